"""Provider events: verified webhooks in, ledger and suppression updates out."""
