"""All mapped models; importing this package registers every table on ``Base.metadata``."""

from newsletter.models.base import Base, UTCDateTime, utcnow
from newsletter.models.resources import Resource, ResourceTopic

__all__ = ["Base", "Resource", "ResourceTopic", "UTCDateTime", "utcnow"]
