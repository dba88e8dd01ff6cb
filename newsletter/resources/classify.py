"""Resource classification: type inference, topic tagging, and dedupe keys.

Everything here is a pure function of text so it can run at import time, be
re-run after the keyword lists change, and be unit-tested without a database.

Type inference is deliberately conservative and ordered by how much the
wording commits to a type (see ``infer_type``): a resource that describes
itself ("This issue brief outlines ...") beats a passing mention ("... a
Quality Counts report ...").  ``None`` means "no evidence"; ``classify`` then
falls back to ``"other"``.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import SplitResult, urlsplit, urlunsplit

from newsletter.resources.records import ResourceRecord

RESOURCE_TYPES: tuple[str, ...] = (
    "report",
    "article",
    "podcast",
    "course",
    "toolkit",
    "guide",
    "case study",
    "issue brief",
    "white paper",
    "video",
    "website",
    "other",
)

# --------------------------------------------------------------------------- text folding

_CHAR_MAP = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
        "\u00ad": None,  # soft hyphen
        "\u200b": None,  # zero-width space
    }
)


def fold_text(text: str) -> str:
    """Unify the typographic variants editors paste in (curly quotes, dashes, NBSP).

    NFKC also turns "…" into "..." and NBSP into a plain space, so two copies of a
    title pasted from different CMSs compare equal.
    """
    return unicodedata.normalize("NFKC", text).translate(_CHAR_MAP)


# --------------------------------------------------------------------------- titles and URLs

_TITLE_END_CHARS = " .,;:!?`-*_~/\\|"


@lru_cache(maxsize=65_536)  # an import asks for each record's key several times
def normalise_title(title: str) -> str:
    """Return the dedupe key for a title: folded, casefolded, single-spaced, no end punctuation.

    Brackets and quotes are kept at the ends on purpose: in "(MAPLE)" or
    '"Fake News" - A Primer' they are part of the name, and stripping only one
    side would produce an unbalanced key.
    """
    text = " ".join(fold_text(title).casefold().split())
    return text.strip(_TITLE_END_CHARS)


_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}
_TRACKING_KEYS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "_hsenc", "_hsmi", "mkt_tok"}
)


def _is_tracking_param(pair: str) -> bool:
    """utm_* and the click ids mail/ad platforms append: they never change the page."""
    key = pair.partition("=")[0].casefold()
    return key.startswith("utm_") or key in _TRACKING_KEYS


def _normalise_netloc(parts: SplitResult) -> str:
    """Lowercase the host and drop the scheme's default port (raises ValueError on bad ports)."""
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:  # IPv6 literal: urlsplit removed the brackets
        host = f"[{host}]"
    userinfo, at, _ = parts.netloc.rpartition("@")
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return f"{userinfo}{at}{host}"


@lru_cache(maxsize=65_536)
def normalise_url(url: str) -> str:
    """Return the dedupe key for a URL; never raises (a malformed URL comes back stripped).

    Lowercases scheme and host, drops default ports, the fragment, a trailing
    slash, and tracking parameters; sorts the query by key (stable, so repeated
    keys keep their order).  Percent-escapes are left alone.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        netloc = _normalise_netloc(parts)
    except ValueError:
        return text
    pairs = [p for p in parts.query.split("&") if p and not _is_tracking_param(p)]
    query = "&".join(sorted(pairs, key=lambda p: p.partition("=")[0]))
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), netloc, path, query, ""))


# --------------------------------------------------------------------------- resource types

# (noun as written, type).  Longest phrases first so "issue brief" wins over "brief".
_SELF_NOUNS: tuple[tuple[str, str], ...] = (
    ("series of articles", "article"),
    ("blog article", "article"),
    ("blog post", "article"),
    ("issue brief", "issue brief"),
    ("policy brief", "issue brief"),
    ("white paper", "white paper"),
    ("whitepaper", "white paper"),
    ("case studies", "case study"),
    ("case study", "case study"),
    ("resource page", "toolkit"),
    ("interactive map", "website"),
    ("online course", "course"),
    ("guidebook", "guide"),
    ("handbook", "guide"),
    ("playbook", "guide"),
    ("toolkit", "toolkit"),
    ("tool kit", "toolkit"),
    ("podcast", "podcast"),
    ("episode", "podcast"),
    ("webinar", "video"),
    ("website", "website"),
    ("publication", "report"),
    ("article", "article"),
    ("course", "course"),
    ("report", "report"),
    ("paper", "report"),
    ("brief", "issue brief"),
    ("guide", "guide"),
    ("video", "video"),
    ("blog", "article"),
    ("tool", "toolkit"),
)

# Nouns that are specific enough to count in a title or as a passing mention.
_NAMING_NOUNS = frozenset(
    {
        "issue brief",
        "policy brief",
        "white paper",
        "whitepaper",
        "case studies",
        "case study",
        "interactive map",
        "online course",
        "guidebook",
        "handbook",
        "playbook",
        "toolkit",
        "tool kit",
        "podcast",
        "webinar",
        "website",
        "course",
        "report",
        "guide",
        "video",
    }
)
_TITLE_NOUNS = _NAMING_NOUNS - {"website", "interactive map"}
_MENTION_NOUNS = _NAMING_NOUNS | {"article"}
_TYPE_OF_NOUN = dict(_SELF_NOUNS)


def _noun_alternation(nouns: Iterable[str]) -> str:
    """Regex alternation of nouns, longest first, spaces matching spaces or hyphens."""
    ordered = sorted(nouns, key=len, reverse=True)
    return "|".join(re.escape(n).replace(r"\ ", r"[\s-]+") for n in ordered)


_WORD = r"[\w'-]+"
_SELF_RE = re.compile(
    rf"\b(?:this|these|the\s+following)\s+(?:{_WORD}\s+){{0,2}}?"
    rf"(?P<noun>{_noun_alternation(_TYPE_OF_NOUN)})(?:e?s)?\b",
    re.IGNORECASE,
)
_TITLE_RE = re.compile(
    rf"\b(?P<noun>{_noun_alternation(_TITLE_NOUNS)})(?:e?s)?\b(?=\s*$|\s+(?:for|to|on|about)\b)",
    re.IGNORECASE,
)
_MENTION_RE = re.compile(
    rf"\b(?:a|an|the|this|its|their|our)\s+(?:{_WORD}\s+){{0,3}}?"
    rf"(?P<noun>{_noun_alternation(_MENTION_NOUNS)})(?:e?s)?\b",
    re.IGNORECASE,
)
_HINT_RE = re.compile(rf"\b(?P<noun>{_noun_alternation(_MENTION_NOUNS)})(?:e?s)?\b", re.I)
_NPR_RE = re.compile(r"\bNPR\b")
_TITLE_SEGMENTS_RE = re.compile(r"\s*(?::|\s[-–—]\s)\s*")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?…])\s+")


def _type_of(match: re.Match[str] | None) -> str | None:
    """Map the matched noun (any spacing/case) to its resource type."""
    if match is None:
        return None
    noun = " ".join(match.group("noun").casefold().replace("-", " ").split())
    return _TYPE_OF_NOUN.get(noun)


def _type_from_title(title: str) -> str | None:
    """A title that names its own kind: "Case Study: ...", "Visioning Toolkit", "Guide for ..."."""
    for segment in _TITLE_SEGMENTS_RE.split(fold_text(title)):
        found = _type_of(_TITLE_RE.search(segment))
        if found:
            return found
    return None


def _leading_sentences(text: str, count: int = 3) -> str:
    """The opening sentences, where a summary says what the resource is."""
    return " ".join(_SENTENCE_END_RE.split(text, maxsplit=count)[:count])


def infer_type(title: str, summary: str, *, hints: str = "") -> str | None:
    """Guess the resource type from its wording; ``None`` when there is no evidence.

    Precedence, strongest first:

    1. the title names its kind ("Case Study: ...", "... Toolkit: A Guide to ...",
       "Guide for ...");
    2. the summary describes itself ("This issue brief ...", "In this podcast ...",
       "This dynamic case study ...", "The following guidebook ...").  The
       earliest such phrase wins, so "This white paper is a guide" is a white paper.
       "This paper"/"This publication" count as *report* (there is no bare "paper"
       type), "This tool"/"This resource page" as *toolkit*;
    3. an NPR story is an *article* even when it mentions "an NPR podcast";
    4. a passing mention in the first three sentences ("releases a Quality Counts
       report", "Their website features ...");
    5. ``hints`` (image alt text, call to action: "Visit to read the complete article").
    """
    summary = fold_text(summary)
    return (
        _type_from_title(title)
        or _type_of(_SELF_RE.search(summary))
        or ("article" if _NPR_RE.search(f"{title} {summary}") else None)
        or _type_of(_MENTION_RE.search(_leading_sentences(summary)))
        or _type_of(_HINT_RE.search(fold_text(hints)))
    )


_TYPE_ALIASES = {
    "blog": "article",
    "blog post": "article",
    "blog article": "article",
    "post": "article",
    "whitepaper": "white paper",
    "brief": "issue brief",
    "policy brief": "issue brief",
    "tool": "toolkit",
    "tool kit": "toolkit",
    "resource page": "toolkit",
    "guidebook": "guide",
    "handbook": "guide",
    "playbook": "guide",
    "webinar": "video",
    "web site": "website",
    "site": "website",
    "paper": "report",
    "publication": "report",
    "research": "report",
    "mooc": "course",
    "online course": "course",
    "episode": "podcast",
    "case studies": "case study",
}


def normalise_type(raw: str) -> str | None:
    """Map a type as an editor typed it ("Case-Study", "Podcasts", "Whitepaper") to RESOURCE_TYPES.

    Returns ``None`` for anything unrecognised so the caller can warn and infer instead.
    """
    key = " ".join(fold_text(raw).casefold().replace("-", " ").replace("_", " ").split())
    for candidate in (key, key.removesuffix("s")):
        if candidate in RESOURCE_TYPES:
            return candidate
        if candidate in _TYPE_ALIASES:
            return _TYPE_ALIASES[candidate]
    return None


# --------------------------------------------------------------------------- topics


@dataclass(frozen=True, slots=True)
class Topic:
    """A newsletter section/tag and the words that signal it.

    Keywords match as whole words, case-insensitively, with an optional plural
    "s"/"es"; a space or hyphen in a keyword matches either ("competency based").
    ALL-CAPS keywords (acronyms such as "ELL", "SEL") match case-sensitively so
    they do not fire on ordinary words ("ell", "sel").
    """

    name: str
    keywords: tuple[str, ...]


DEFAULT_TOPICS: tuple[Topic, ...] = (
    Topic(
        "Personalized Learning",
        (
            "personalized learning",
            "personalised learning",
            "personalization",
            "personalisation",
            "personalize learning",
            "personalise learning",
            "student-centered",
            "student-centred",
            "learner-centered",
            "learner-centred",
            "individualized learning plan",
            "ILP",
            "blended learning",
        ),
    ),
    Topic(
        "Competency-Based Education",
        (
            "competency-based",
            "competency education",
            "competency",
            "competencies",
            "mastery-based",
            "proficiency-based",
            "standards-based grading",
        ),
    ),
    Topic(
        "Assessment",
        (
            "assessment",
            "performance assessment",
            "accountability",
            "standardized test",
            "testing",
            "transcript",
            "grading",
        ),
    ),
    Topic(
        "Policy & ESSA",
        (
            "ESSA",
            "Every Student Succeeds Act",
            "policy",
            "policies",
            "policymaker",
            "policy-maker",
            "legislation",
            "legislative",
            "state plan",
            "federal",
        ),
    ),
    Topic(
        "Equity",
        (
            "equity",
            "equitable",
            "inequity",
            "inequities",
            "segregation",
            "segregated",
            "diversity",
            "racial",
            "achievement gap",
            "opportunity gap",
            "underserved",
            "low-income",
            "inclusion",
            "inclusive",
        ),
    ),
    Topic(
        "English Language Learners",
        (
            "English language learner",
            "English learner",
            "ELL",
            "English-proficient",
            "bilingual",
            "multilingual",
            "dual language",
        ),
    ),
    Topic(
        "Students with Disabilities",
        (
            "students with disabilities",
            "learning disabilities",
            "special education",
            "IEP",
        ),
    ),
    Topic(
        "Educator Development",
        (
            "professional development",
            "teacher capacity",
            "educator preparation",
            "teacher preparation",
            "teacher training",
            "educator development",
            "educator roles",
            "teaching roles",
            "instructional coach",
            "coaching",
            "staffing",
            "teacher leadership",
        ),
    ),
    Topic(
        "School Culture & SEL",
        (
            "social and emotional",
            "social-emotional",
            "SEL",
            "school climate",
            "school culture",
            "empathy",
            "kindness",
            "restorative justice",
            "restorative practice",
            "discipline",
            "belonging",
            "well-being",
            "well being",
            "character strengths",
        ),
    ),
    Topic(
        "Technology & Connectivity",
        (
            "technology",
            "edtech",
            "digital learning",
            "digital age",
            "internet",
            "broadband",
            "connectivity",
            "online learning",
            "makerspace",
            "devices",
        ),
    ),
    Topic(
        "Media Literacy",
        (
            "media literacy",
            "news literacy",
            "fake news",
            "misinformation",
            "disinformation",
            "digital citizenship",
        ),
    ),
    Topic(
        "Student Agency",
        (
            "student agency",
            "student voice",
            "student ownership",
            "take ownership",
        ),
    ),
    Topic(
        "College & Career Readiness",
        (
            "career readiness",
            "college readiness",
            "college and career",
            "career path",
            "graduate profile",
            "graduation requirements",
            "postsecondary",
            "workforce",
        ),
    ),
    Topic(
        "Leadership & Systems Change",
        (
            "superintendent",
            "district leaders",
            "school leaders",
            "distributed leadership",
            "systems change",
            "school improvement",
            "innovation",
        ),
    ),
)


def _keyword_pattern(keyword: str) -> str:
    """One keyword as a pattern; acronyms are made case-sensitive inline."""
    body = re.escape(fold_text(keyword)).replace(r"\ ", r"[\s-]+").replace(r"\-", r"[\s-]+")
    return f"(?-i:{body})" if keyword.isupper() else body


@dataclass(frozen=True, slots=True)
class _TopicMatcher:
    """A topic's keyword alternation, and the words of which any match contains one.

    The regex's look-behinds defeat the engine's own literal scan, so trying it
    on every record costs tens of microseconds per topic.  Every match starts
    with a keyword's first word as a whole word (followed by a space or hyphen),
    or, for a one-word keyword, that word with its plural: so a record whose
    words include none of ``words`` cannot match, and the regex only runs on
    the few that might (what lets 200,000 rows classify in seconds).
    """

    regex: re.Pattern[str]
    words: frozenset[str]

    def search(self, folded: str, tokens: frozenset[str]) -> bool:
        return not self.words.isdisjoint(tokens) and self.regex.search(folded) is not None


_WORD_RE = re.compile(r"\w+")


def _first_words(keyword: str) -> set[str]:
    """The whole word a match of ``keyword`` begins with, lower-cased (plurals included)."""
    match = _WORD_RE.search(fold_text(keyword).lower())
    word = match.group(0) if match else ""
    return {word, word + "s", word + "es"}


@lru_cache(maxsize=256)
def _topic_matcher(keywords: tuple[str, ...]) -> _TopicMatcher | None:
    """One compiled alternation per keyword tuple (cached: topics are matched per record)."""
    if not keywords:
        return None
    # whole words only, with an optional plural; the boundaries stand outside the
    # alternation (backtracking still tries every keyword), about 5x faster than inside it
    alternation = "|".join(_keyword_pattern(k) for k in keywords)
    regex = re.compile(rf"(?<!\w)(?:{alternation})(?:e?s)?(?!\w)", re.IGNORECASE)
    return _TopicMatcher(regex, frozenset().union(*(_first_words(k) for k in keywords)))


def infer_topics(text: str, topics: Sequence[Topic]) -> tuple[str, ...]:
    """Names of the topics whose keywords occur in ``text``, in the order of ``topics``."""
    folded = fold_text(text)
    tokens = frozenset(_WORD_RE.findall(folded.lower()))
    found: list[str] = []
    for topic in topics:
        matcher = _topic_matcher(topic.keywords)
        if matcher is not None and topic.name not in found and matcher.search(folded, tokens):
            found.append(topic.name)
    return tuple(found)


def _canonical_topics(hints: Iterable[str], topics: Sequence[Topic]) -> list[str]:
    """Map given topics/categories onto topic names; keep unknown ones verbatim.

    "personalized learning" or "ESSA" from a feed category become "Personalized
    Learning"/"Policy & ESSA"; a free-form tag no topic recognises is kept as is.
    """
    by_name = {t.name.casefold(): t.name for t in topics}
    out: list[str] = []
    for hint in (h.strip() for h in hints):
        if not hint:
            continue
        known = by_name.get(hint.casefold())
        out.extend([known] if known else list(infer_topics(hint, topics)) or [hint])
    return out


def _dedupe(names: Iterable[str]) -> tuple[str, ...]:
    """Drop case-insensitive repeats, keeping the first spelling and the order."""
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        if name.casefold() not in seen:
            seen.add(name.casefold())
            out.append(name)
    return tuple(out)


_ORG_WORD = r"(?:[A-Z][\w&.’'-]*|of|for|and|the|on|in)"
_SOURCE = re.compile(
    r"\b(?:from|by|compiled by|written by|published by|developed by)\s+(?:the\s+)?"
    rf"((?:[A-Z]|[a-z][A-Z])[\w&.’'-]*(?:\s+{_ORG_WORD}){{0,8}}(?:\s+\([A-Z][\w&-]*\))?)"
)
_NOT_ORGS = {"April", "Emily", "Read", "This", "The", "In", "A"}


def infer_source(summary: str) -> str | None:
    """The publishing organisation named in the first sentence ("This issue brief from iNACOL").

    Only the opening sentence is read, where these summaries name their
    publisher; a name must start with a capital and may not end in a joining word.
    """
    first = re.split(r"(?<=[.!?])\s", summary, maxsplit=1)[0]
    match = _SOURCE.search(first)
    if not match:
        return None
    name = re.sub(r"(?:\s+(?:of|for|and|the|on|in))+$", "", match.group(1)).strip(" .,")
    words = name.split()
    if not words or words[0] in _NOT_ORGS or len(name) < 3:
        return None
    return name


def classify(record: ResourceRecord, topics: Sequence[Topic]) -> ResourceRecord:
    """Return a copy with ``type`` filled (``"other"`` when nothing fits) and topics merged.

    A type already set by the source is kept.  Given topics come first
    (canonicalised), then topics inferred from title and summary.
    """
    hints = " ".join(filter(None, (record.image_alt, record.call_to_action)))
    kind = record.type or infer_type(record.title, record.summary, hints=hints) or "other"
    inferred = infer_topics(f"{record.title}\n{record.summary}", topics)
    merged = _dedupe([*_canonical_topics(record.topics, topics), *inferred])
    source = record.source or infer_source(record.summary)
    return dataclasses.replace(record, type=kind, topics=merged, source=source)
