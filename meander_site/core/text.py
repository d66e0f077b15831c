"""What typed text may contain, said once for every field on every form: the public booking, staff edits,
notes, next steps, demo places and wishes all answer a forbidden character or an overlong text alike.

And the one rule for what looks like a link: a mail from us never carries a link someone typed (the
confirmation leaves such a name out, the wish for another demo time quotes it defanged)."""

import re
import unicodedata

ALLOWED_MULTILINE_CONTROLS = {"\n", "\r", "\t"}
# U+2028 and U+2029 (line and paragraph separator) break lines too, in mail headers and in JavaScript.
LINE_BREAKS = {"\r", "\n", "\u2028", "\u2029"}
# Invisible characters that reorder what is shown (bidi embeddings, overrides and isolates) or hide in it (the
# byte-order mark): refused in every field, also where other format characters (a soft hyphen pasted from a
# word processor) are kept, in multi-line text.
HIDDEN_IN_ANY_TEXT = {*map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A)), "\ufeff"}
ZERO_WIDTH_JOINER = "\u200d"
# What may stand between an emoji and the joiner: the emoji presentation selector and the skin tones.
EMOJI_TRAILERS = {"\ufe0f", *map(chr, range(0x1F3FB, 0x1F400))}

INVISIBLE = "Feltet inneholder et usynlig kontrolltegn. Skriv teksten inn på nytt."


def has_control_characters(value: str) -> bool:
    return any(unicodedata.category(character) in ("Cc", "Cs") for character in value)


def _joins_emoji(value: str, position: int) -> bool:
    """A zero-width joiner inside an emoji sequence (👩‍👩‍👧), where it is part of the picture."""
    before = position - 1
    while before >= 0 and value[before] in EMOJI_TRAILERS:
        before -= 1
    after = position + 1
    return (
        before >= 0
        and after < len(value)
        and unicodedata.category(value[before]) == "So"
        and unicodedata.category(value[after]) == "So"
    )


def forbidden_character_message(value: str, multiline: bool = False) -> str | None:
    """Why `value` cannot be stored, or None: a line break in a single-line field, an invisible control, or
    an invisible format character (Unicode Cf: bidi overrides, zero-width spaces, the byte-order mark) in a
    single-line field (those reach mail subjects, calendar titles and exports), except a joiner in an emoji."""
    allowed = ALLOWED_MULTILINE_CONTROLS | LINE_BREAKS if multiline else set()
    for position, character in enumerate(value):
        if character in allowed:
            continue
        if character in LINE_BREAKS:
            return "Feltet kan bare ha én linje. Fjern linjeskiftet."
        category = unicodedata.category(character)
        if category in ("Cc", "Cs") or character in HIDDEN_IN_ANY_TEXT:
            return INVISIBLE
        if category == "Cf" and not multiline and not _joins_emoji(value, position):
            return INVISIBLE
    return None


def text_problem(text: str, label: str, limit: int, multiline: bool = False) -> str | None:
    """What is wrong with a typed text, said for its field: a forbidden character, or more than `limit` characters."""
    problem = forbidden_character_message(text, multiline)
    if problem:
        return problem
    if len(text) > limit:
        return f"{label} kan være høyst {limit} tegn. Du har skrevet {len(text)}."
    return None


# --- what looks like a link ------------------------------------------------------------------------------

# What a mail client could turn into a link, or a reader type into a browser: a scheme, www., an address, a
# domain name (a letter or digit, a dot, two letters).
LINK_LIKE = re.compile(r"://|www\.|@|\w\.[^\W\d_]{2,}", re.IGNORECASE)
# Dots a browser or a reader takes for the dot in a domain name that NFKC leaves alone (IDNA's ideographic
# full stop; the stenographic and Syriac ones), and the ways people write a dot so that nothing links it
# («evil[.]example», «evil (dot) example»).
DOT_CHARACTERS = re.compile(r"[\u3002\u2e3c\u0701\u0702]")
WRITTEN_DOT = re.compile(r"\s*[\[({<]\s*(?:\.|dot|punktum)\s*[\])}>]\s*", re.IGNORECASE)
LINK_REMOVED = "[lenke fjernet]"


def as_a_browser_reads_it(text: str) -> str:
    """The text as it would be read for a link: compatibility forms folded (fullwidth letters, U+2024 ONE DOT
    LEADER and the small full stop become ASCII), invisible format characters dropped, look-alike dots made dots."""
    folded = unicodedata.normalize("NFKC", text)
    visible = "".join(character for character in folded if unicodedata.category(character) != "Cf")
    return WRITTEN_DOT.sub(".", DOT_CHARACTERS.sub(".", visible))


def looks_like_link(text: str) -> bool:
    return LINK_LIKE.search(as_a_browser_reads_it(text)) is not None


def quotable(text: str | None) -> str | None:
    """A stored name fit to greet someone with, or None: a mail from us never carries a link someone typed."""
    if not text or looks_like_link(text):
        return None
    return text


def without_links(text: str) -> str:
    """Text quoted in a mail with every word that looks like a link replaced by «[lenke fjernet]»: what is left
    is plain text no mail client turns into a link, and no reader into an address."""
    # «evil [.] example» is one word to a reader: the written-out dot joins its neighbours first.
    joined = WRITTEN_DOT.sub("[.]", text)
    return re.sub(r"\S+", lambda word: LINK_REMOVED if looks_like_link(word.group()) else word.group(), joined)
