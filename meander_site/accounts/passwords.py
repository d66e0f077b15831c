"""The password rule, stated once: at least 12 characters and not a guessable one (zxcvbn scores it 3 or more of
4), with zxcvbn's advice in Norwegian. The forms show it before anyone types; every way to set a password
(invitation, reset link, Innstillinger, the command line) checks it here."""

from collections.abc import Iterable

import zxcvbn

MIN_PASSWORD_LENGTH = 12
# argon2 takes any length, but a form field needs an end; zxcvbn reads at most this much of it.
MAX_PASSWORD_LENGTH = 128
ZXCVBN_MAX_LENGTH = 72
MIN_SCORE = 3

RULE = (
    f"Minst {MIN_PASSWORD_LENGTH} tegn, og ikke lett å gjette: unngå vanlige ord, navn, datoer og mønstre som «123» "
    "eller «qwerty». Flere ord som ikke hører sammen, er både lett å huske og vanskelig å gjette."
)

# zxcvbn knows English words; these make the obvious Norwegian ones (and our own name) count as guessable too.
GUESSABLE_WORDS = (
    "meander",
    "passord",
    "hemmelig",
    "salg",
    "selger",
    "likeperson",
    "velkommen",
    "sommer",
    "vinter",
    "høst",
    "norge",
    "oslo",
    "bergen",
    "trondheim",
    "stavanger",
    "tromsø",
    "kjæreste",
    "elsker",
    "fotball",
    "passordet",
    "mittpassord",
)

# Every warning and suggestion zxcvbn 4.5 gives (zxcvbn/feedback.py), in Norwegian.
FEEDBACK = {
    "Use a few words, avoid common phrases.": "Bruk noen ord, og unngå vanlige uttrykk.",
    "No need for symbols, digits, or uppercase letters.": "Du trenger ikke tegn, sifre eller store bokstaver.",
    "Add another word or two. Uncommon words are better.": "Legg til et ord eller to. Uvanlige ord er best.",
    "Straight rows of keys are easy to guess.": "Taster på rad er lette å gjette.",
    "Short keyboard patterns are easy to guess.": "Korte mønstre på tastaturet er lette å gjette.",
    "Use a longer keyboard pattern with more turns.": "Bruk et lengre tastaturmønster med flere svinger.",
    'Repeats like "aaa" are easy to guess.': "Gjentakelser som «aaa» er lette å gjette.",
    'Repeats like "abcabcabc" are only slightly harder to guess than "abc".': (
        "Gjentakelser som «abcabcabc» er bare litt vanskeligere å gjette enn «abc»."
    ),
    "Avoid repeated words and characters.": "Unngå å gjenta ord og tegn.",
    'Sequences like "abc" or "6543" are easy to guess.': "Rekker som «abc» eller «6543» er lette å gjette.",
    "Avoid sequences.": "Unngå rekker.",
    "Recent years are easy to guess.": "Årstall fra de siste årene er lette å gjette.",
    "Avoid recent years.": "Unngå årstall fra de siste årene.",
    "Avoid years that are associated with you.": "Unngå årstall som har med deg å gjøre.",
    "Dates are often easy to guess.": "Datoer er ofte lette å gjette.",
    "Avoid dates and years that are associated with you.": "Unngå datoer og årstall som har med deg å gjøre.",
    "This is a top-10 common password.": "Dette er et av de ti vanligste passordene.",
    "This is a top-100 common password.": "Dette er et av de hundre vanligste passordene.",
    "This is a very common password.": "Dette er et svært vanlig passord.",
    "This is similar to a commonly used password.": "Dette ligner et vanlig passord.",
    "A word by itself is easy to guess.": "Et enkelt ord er lett å gjette.",
    "Names and surnames by themselves are easy to guess.": "Fornavn og etternavn alene er lette å gjette.",
    "Common names and surnames are easy to guess.": "Vanlige fornavn og etternavn er lette å gjette.",
    "Capitalization doesn't help very much.": "Stor forbokstav hjelper lite.",
    "All-uppercase is almost as easy to guess as all-lowercase.": (
        "Bare store bokstaver er nesten like lett å gjette som bare små."
    ),
    "Reversed words aren't much harder to guess.": "Ord skrevet baklengs er lite vanskeligere å gjette.",
    "Predictable substitutions like '@' instead of 'a' don't help very much.": (
        "Forutsigbare bytter, som «@» for «a», hjelper lite."
    ),
}
GENERIC_ADVICE = "Legg til et ord eller to. Uvanlige ord er best."


def _norwegian(text: str) -> str:
    return FEEDBACK.get(text, GENERIC_ADVICE)


def password_problem(password: str, user_inputs: Iterable[str] = ()) -> str | None:
    """What is wrong with a new password, in Norwegian (None: it may be used). `user_inputs` are the person's own
    name and address, which never make a password hard to guess."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Passordet må ha minst {MIN_PASSWORD_LENGTH} tegn. Du har skrevet {len(password)}."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Passordet kan ha høyst {MAX_PASSWORD_LENGTH} tegn. Du har skrevet {len(password)}."
    words = []
    for value in user_inputs:
        parts = value.replace("@", " ").replace(".", " ").replace("-", " ").replace("_", " ").split()
        words += [*parts, "".join(parts)]  # «Nina Nyland» and «ninanyland» alike
    result = zxcvbn.zxcvbn(password[:ZXCVBN_MAX_LENGTH], user_inputs=[*GUESSABLE_WORDS, *words])
    if result["score"] >= MIN_SCORE:
        return None
    feedback = result["feedback"]
    advice = [_norwegian(feedback["warning"])] if feedback["warning"] else []
    advice += [_norwegian(suggestion) for suggestion in feedback["suggestions"]]
    advice = list(dict.fromkeys(advice)) or [GENERIC_ADVICE]
    return "Passordet er for lett å gjette. " + " ".join(advice)
