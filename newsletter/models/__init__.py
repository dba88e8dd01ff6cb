"""All mapped models; importing this package registers every table on ``Base.metadata``."""

from newsletter.models.abtest import SubjectTest
from newsletter.models.accounts import Role, User, UserSession
from newsletter.models.automation import (
    ApiToken,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookState,
    WebhookSubscription,
)
from newsletter.models.base import Base, UTCDateTime, utcnow
from newsletter.models.bounces import GuardBaseline, InboundKind, InboundMail
from newsletter.models.deliverability import WarmupDay
from newsletter.models.editing import IssueRevision, MediaImage
from newsletter.models.issues import Issue, IssueItem, IssueSection, IssueStatus
from newsletter.models.jobs import Job, JobState
from newsletter.models.resources import Resource, ResourceTopic
from newsletter.models.scheduling import Schedule, ScheduleRun
from newsletter.models.sending import (
    BatchStatus,
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    SendBatch,
    TestSend,
    TrackingEvent,
)
from newsletter.models.sequences import (
    EnrolmentStatus,
    Sequence,
    SequenceEnrolment,
    SequenceStatus,
    SequenceStep,
)
from newsletter.models.sources import ItemState, Source, SourceItem, SourceKind
from newsletter.models.subscribers import (
    ConsentEvent,
    ConsentKind,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
    SuppressionReason,
)
from newsletter.models.tracking import EngagementEvent, IssueLink, LinkClick, ResourceClick

__all__ = [
    "ApiToken",
    "Base",
    "BatchStatus",
    "Campaign",
    "CampaignStatus",
    "ConsentEvent",
    "ConsentKind",
    "Delivery",
    "DeliveryStatus",
    "EngagementEvent",
    "EnrolmentStatus",
    "GuardBaseline",
    "InboundKind",
    "InboundMail",
    "Issue",
    "IssueItem",
    "IssueLink",
    "IssueRevision",
    "IssueSection",
    "IssueStatus",
    "ItemState",
    "Job",
    "JobState",
    "LinkClick",
    "MediaImage",
    "Resource",
    "ResourceClick",
    "ResourceTopic",
    "Role",
    "Schedule",
    "ScheduleRun",
    "SendBatch",
    "Sequence",
    "SequenceEnrolment",
    "SequenceStatus",
    "SequenceStep",
    "Source",
    "SourceItem",
    "SourceKind",
    "SubjectTest",
    "Subscriber",
    "SubscriberStatus",
    "SubscriberTopic",
    "Suppression",
    "SuppressionReason",
    "TestSend",
    "TrackingEvent",
    "UTCDateTime",
    "User",
    "UserSession",
    "WarmupDay",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookState",
    "WebhookSubscription",
    "utcnow",
]
