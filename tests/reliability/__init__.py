"""Reliability and security suite: faults, bad input and load (issue #9).

Every fault test ends with ``helpers.audit``: each recipient in exactly one
final state, no recipient sent twice, nobody silently skipped.
"""
