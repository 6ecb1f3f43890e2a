"""Reading a request's wording: its clauses, what each one asks for, and the arguments it spells out.

The router embeds each clause to pick its tool; what the embedding cannot see is in the words:

- where one ask ends and the next begins ("read the sign *and* say it out loud"), and which
  sentences only set the scene ("I recorded a talk yesterday.") rather than ask for something;
- whether a clause refers back to what an earlier one produced ("say *it*", "based on *the
  caption*"), which makes the two a chain;
- the arguments a clause spells out: the text to speak (quoted, after a colon, or the rest of the
  clause), candidate labels ("a dog, a cat or a rabbit"; "which of these: 'a', 'b'"), and whether
  a question is about a document's text.

Quoted text is masked before splitting, so "say 'yes, and then no'" stays one clause. Everything
here is plain text processing: fast, deterministic, and independent of any model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Clause",
    "asks_for_picture",
    "asks_for_speech",
    "asks_for_writing",
    "labels",
    "mentions_document",
    "own_payload",
    "payload",
    "quotations",
    "refers_back",
    "split_clauses",
    "split_request",
    "spoken_text",
]

_CLAUSE_SPLIT = re.compile(r"\s*;\s*(?:(?:and\s+)?then\s+)?|,?\s+(?:and(?:\s+(?:then|also))?|then|also)\s+(?=\w)|,\s+",
                           re.I)
_VERBS = (
    r"describe|transcribe|caption|read|tell|summari[sz]e|draw|generate|make|create|render|paint|sketch|say|speak|"
    r"translate|count|identify|list|classify|categori[sz]e|extract|write|give|show|find|recogni[sz]e|detect|explain|"
    r"compare|turn|convert|answer|check|listen|look|take|grab|capture|visuali[sz]e|illustrate|determine|figure|"
    r"provide|produce|narrate|voice|decipher|interpret|analy[sz]e|play|help|assist|let|see|open|design|put"
)
# A piece of a split request is a clause of its own only if it starts like one: a question word or
# a verb a request starts with. "draw a cat and a dog" stays whole; "... and describe the photo" splits.
_CLAUSE_START = re.compile(
    r"^(?:(?:please|now|finally|also|then|so)\s+)?(what|which|who|whose|where|when|why|how|is|are|was|were|does|do|did|"
    r"can|could|will|would|should|please|" + _VERBS + r")\b", re.I)
# A clause that asks for something (rather than setting the scene): a question, a request form, or a verb first.
_ASK = re.compile(
    r"^(?:(?:so|now|and|also|then|please|kindly|finally|lastly|furthermore|additionally|next)[,\s]+)*"
    r"(?:(?:could|can|would|will) you|please|help me|i(?:'d| would) (?:like|love|want)|i (?:want|need)|"
    r"i am (?:looking|hoping) for|i'm (?:looking|hoping) for|let me know|what|which|who|whose|where|when|why|how|"
    r"is|are|does|do|did|" + _VERBS + r")\b", re.I)
_LEAD_IN = re.compile(r"^(?:please\s+)?(?:look at|listen to|take a look at|have a look at|check out|open|see)\b"
                      r"(?:\s+\S+){1,4}$", re.I)
# A quotation, not an apostrophe: the opening mark follows a space (or starts the text), the closing one
# is followed by a space or punctuation ("draw the cat's toy" quotes nothing).
_QUOTED = re.compile(
    r"""(?:^|(?<=[\s:(,]))['"\u2018\u201c]([^'"\u2019\u201d]{2,}?)['"\u2019\u201d](?=$|[\s.,!?;:)-])""")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\u00c0-\u024f\"'(])")
_RESULT_NOUNS = (r"result|results|output|text|caption|captions|description|summary|transcript|transcription|answer|"
                 r"answers|words|emotion|mood|label|labels|category|class|reading|translation|message")
_BACK = re.compile(
    r"\b(?:it|them|that|its|their)\b|\b(?:the|this|that|these|those)\s+(?:" + _RESULT_NOUNS + r")\b|\bbased on\b|"
    r"\bwhat (?:it|they) (?:says?|describes?|shows?|contains?|means?)\b|\bwhat (?:is|was|gets) (?:said|written)\b",
    re.I)
_BACK_TO_MEDIA = re.compile(
    r"\b(?:it|them|its)\b|\b(?:the|that)\s+(?:result|output|picture|image|drawing|painting|poster|illustration|"
    r"generated \w+|new \w+|speech|audio|recording|clip|voice)\b", re.I)
_DOCUMENT = re.compile(
    r"\b(?:documents?|invoices?|receipts?|letters?|forms?|pages?|menus?|tickets?|bills?|contracts?|certificates?|"
    r"screenshots?|reports?|articles?|slides?|handwriting|inscriptions?|headings?|headlines?|titles?|written|"
    r"writing|text(?!-)|due date|total|signed|signature|says?|said|read|labels?)\b", re.I)
_SPOKEN = re.compile(
    r"\b(?:out loud|aloud|speak|spoken|narrate|pronounce|text[- ]to[- ]speech|read (?:it|this|that|them) (?:back|out)|"
    r"say (?:it|this|that|them)\b|in an? [\w-]+(?: [\w-]+)? voice|(?:into|to|as) (?:an? )?(?:speech|audio|voice)"
    r"(?: (?:clip|file|message|recording))?)\b|\bsay\s+['\"\u2018\u201c]", re.I)
# Chores on text that no tool does and the answer's writer (the fusion step) does from what the tools found.
_WRITING = re.compile(
    r"\b(?:summari[sz]\w*|sum (?:it |them |this |that |everything )?up|translat\w*|paraphras\w*|rephras\w*|"
    r"reword\w*|rewrite|shorten\w*|simplif\w*|proofread\w*|tl;?dr|gist|(?:main|key) (?:points?|ideas?|takeaways?)|"
    r"bullet(?:ed)? (?:points?|list)|count (?:the |how many )?(?:words|sentences|lines|characters|letters)|"
    r"word count|(?:add|total) (?:it |them |those |these )?up|"
    r"(?:make|keep) (?:it|them|that|this) (?:shorter|briefer|simpler|more concise))\b", re.I)
_MAKE_PICTURE = re.compile(
    r"\b(?:draw|paint|generat|creat|mak|render|sketch|illustrat|design|produc)\w*\s+(?:me\s+)?"
    r"(?:an?|another|a new|new|some)\s+(?:[\w-]+\s+)?(?:image|picture|drawing|painting|poster|illustration|logo|"
    r"artwork|sketch)\b|\bvisuali[sz]\w*\b", re.I)
_SPEECH_LEAD = re.compile(
    r"^(?:.*?\b(?:say|speak|read|narrate|pronounce|voice|announce)\b(?:\s+(?:out|aloud|out loud))?"
    r"|(?:turn|convert|make)\s+(?:this|the)?\s*(?:text|sentence|phrase|message)?\s*(?:into|to)\s+(?:speech|audio))\s*",
    re.I)
_SPEECH_TAIL = re.compile(r"\s*\b(?:out loud|aloud|in an? [\w-]+(?: [\w-]+)? voice|for me|to me|please)\b.*$", re.I)
_LABEL_LEAD = re.compile(r".*(?:\b(?:is|are|was|be|this|it|these|of|show|shows|showing|contain|contains|like|either|"
                         r"between|whether|if|as|into)\s+|:\s*)", re.I)
_LABEL_TAIL = re.compile(r"(?:\s+(?:in|on|from|at)\s+(?:this|the|that|my)\s+\w+)?\s*[?.!]*\s*$", re.I)
# What follows "so that I can ..." says why, not what: it sets the scene for the ask before it.
_PURPOSE = re.compile(r",?\s+\b(?:so that|so (?:I|we|it|they) (?:can|could|may|might|will)|so it'?s|in order to)\b",
                      re.I)
_MASK = "\x00{}\x00"


@dataclass(frozen=True)
class Clause:
    """One piece of a request."""

    text: str
    ask: bool = True
    """It asks for something (a question, a request form, an imperative); False: it sets the scene."""
    lead_in: bool = False
    """A bare "look at this picture" / "listen to this": a step only if a later clause uses its output."""


def quotations(text: str) -> list[str]:
    """The quoted passages of ``text``, in order."""
    return [m.group(1).strip() for m in _QUOTED.finditer(text)]


def _mask(text: str) -> tuple[str, list[str]]:
    found: list[str] = []

    def hide(match: re.Match[str]) -> str:
        found.append(match.group(0))
        return _MASK.format(len(found) - 1)

    return _QUOTED.sub(hide, text), found


def _unmask(text: str, found: list[str]) -> str:
    return re.sub("\x00(\\d+)\x00", lambda m: found[int(m.group(1))], text)


def split_clauses(text: str) -> list[str]:
    """Split "transcribe the audio and describe the photo" into its clauses.

    Only pieces that start like a request stand alone; any other piece ("a dog" in "draw a cat
    and a dog") stays part of the clause before it, so the split cannot tear a noun phrase off
    its verb. Quoted text is never split.
    """
    return _split(text, " ,.")


def _split(text: str, strip: str) -> list[str]:
    masked, found = _mask(text)
    clauses: list[str] = []
    start = 0
    for match in _CLAUSE_SPLIT.finditer(masked):
        rest = masked[match.end():]
        if _CLAUSE_START.match(rest) and masked[start:match.start()].strip(" ,."):
            clauses.append(masked[start:match.start()].strip(" ,."))
            start = match.end()
    clauses.append(masked[start:].strip(strip) or masked)
    return [_unmask(clause, found) for clause in clauses]


def split_request(text: str) -> list[Clause]:
    """The request's sentences and clauses, each marked as an ask or as scene-setting.

    A request with no ask at all ("A red bicycle, please.") is one ask: the whole text.
    """
    masked, found = _mask(text)
    pieces: list[Clause] = []
    for sentence in _SENTENCE_END.split(masked.strip()):
        head, purpose = _PURPOSE.split(sentence, maxsplit=1) if _PURPOSE.search(sentence) else (sentence, "")
        for clause in _split(_unmask(head, found), " ,"):  # the end stays: "?" marks a question
            bare = clause.strip()
            if not bare:
                continue
            asks = bool(_ASK.match(bare)) or bare.endswith("?")
            pieces.append(Clause(bare, asks, asks and bool(_LEAD_IN.match(bare.rstrip(".!")))))
        if purpose.strip():
            pieces.append(Clause(_unmask(purpose, found).strip(), ask=False))
    if not any(piece.ask for piece in pieces):
        return [Clause(text.strip())]
    return pieces


def refers_back(clause: str, *, media: bool = False) -> bool:
    """Does ``clause`` point at an earlier result ("say it", "based on the caption", "describe the picture")?

    ``media``: the reference is to a produced image or sound ("describe it", "the picture") rather
    than to produced text ("the caption", "what it says").
    """
    masked, _ = _mask(clause)
    return bool((_BACK_TO_MEDIA if media else _BACK).search(masked))


def payload(clause: str) -> str:
    """The part of an instruction to pass on: after a colon, or in quotes, else the whole clause."""
    if ":" in clause and clause.split(":", 1)[1].strip():
        return clause.split(":", 1)[1].strip()
    quoted = _QUOTED.search(clause)
    return quoted.group(1).strip() if quoted else clause


def own_payload(clause: str) -> str | None:
    """Text the clause itself spells out (after a colon, or quoted); None when it has none."""
    if ":" in clause and clause.split(":", 1)[1].strip():
        return clause.split(":", 1)[1].strip()
    quoted = _QUOTED.search(clause)
    return quoted.group(1).strip() if quoted else None


def spoken_text(clause: str) -> str:
    """What to say for "say hello to everyone" when nothing is quoted: the clause after its speech verb."""
    rest = _SPEECH_TAIL.sub("", _SPEECH_LEAD.sub("", clause, count=1)).strip(" ,.:;")
    return rest if len(rest) >= 2 else clause


def labels(clause: str) -> list[str] | None:
    """Candidate labels a clause lists: "a dog, a cat or a rabbit", or two or more quoted options."""
    quoted = quotations(clause)
    if len(quoted) >= 2:
        return quoted
    masked, _ = _mask(clause)
    head, sep, last = masked.rpartition(" or ")
    if not sep:
        return None
    items = [part.strip() for part in re.split(r",\s*", head)]
    items[0] = _LABEL_LEAD.sub("", items[0])
    items.append(_LABEL_TAIL.sub("", last.strip()))
    items = [i.strip(" ,.?!") for i in items if i.strip(" ,.?!")]
    if len(items) < 2 or any(len(i.split()) > 4 or "\x00" in i for i in items):
        return None
    return items


def mentions_document(clause: str) -> bool:
    """Is the clause about written text (a document, receipt, sign's words, a due date)?"""
    return bool(_DOCUMENT.search(clause))


def asks_for_speech(clause: str) -> bool:
    """Does the clause want spoken output ("say it out loud", "in a calm voice", "into speech")?"""
    return bool(_SPOKEN.search(clause))


def asks_for_writing(text: str) -> bool:
    """Is ``text`` a chore on text ("summarize it", "translate it to French", "count the words")?

    No reader tool does these; the answer's writer does them from what the tools read. Also
    asked of a tool's description: a tool that summarizes is the one to run for "summarize".
    """
    return bool(_WRITING.search(text))


def asks_for_picture(clause: str) -> bool:
    """Does the clause ask to make a picture ("make a new picture", "create an image of")?"""
    return bool(_MAKE_PICTURE.search(clause))
