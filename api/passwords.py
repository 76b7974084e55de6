"""argon2id hashing, off the event loop and bounded in how many run at once."""

from __future__ import annotations

import asyncio
import re
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP's argon2id recommendation: m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Each hash holds 19 MiB and a core for tens of milliseconds; two cores, two at once.
_SLOTS = asyncio.Semaphore(4)
# every admin reads every client's personal data, so none gets a weak password
MIN_STAFF_PASSWORD = 12
MAX_PASSWORD = 100
# zxcvbn's score, 0 to 4: 3 is about 10^8 to 10^10 guesses
_SCORE_NEEDED = 3
# Its matching grows fast with length and runs on the event loop: 72 random
# characters took 118 ms, 32 take 11 at most. What follows the 32nd is not
# looked at: 32 characters hard to guess need nothing more.
_GUESS_CHECKED = 32
# A real hash of a random password, so an unknown account costs a verify too.
_DUMMY_HASH = HASHER.hash("tlounge-no-such-account-placeholder")


async def hash_password(password: str) -> str:
    async with _SLOTS:
        return await asyncio.to_thread(HASHER.hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when the password matches; an unknown account costs the same time."""
    async with _SLOTS:
        return await asyncio.to_thread(
            _verify, stored_hash or _DUMMY_HASH, password, stored_hash is not None
        )


def _verify(stored_hash: str, password: str, real: bool) -> bool:
    try:
        HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return real


def needs_rehash(stored_hash: str) -> bool:
    return HASHER.check_needs_rehash(stored_hash)


def staff_password_problem(password: str, email: str) -> str | None:
    """Why a password is too weak for an admin, or None when it will do."""
    if len(password) > MAX_PASSWORD:
        return f"is longer than {MAX_PASSWORD} characters"
    # judged as it reads: invisible characters count for nothing, and a
    # full-width "ｐａｓｓｗｏｒｄ" is the word it shows
    shown = "".join(
        char
        for char in unicodedata.normalize("NFKC", password)
        if unicodedata.category(char) not in _UNSEEN
    )
    if len(shown) < MIN_STAFF_PASSWORD:
        return f"is shorter than {MIN_STAFF_PASSWORD} characters"
    if len(set(shown)) < 6:
        return "repeats too few different characters"
    local = email.split("@", 1)[0].lower()
    # a tag after '+' reaches the same mailbox, so the name before it counts,
    # and so does each name of "john.smith" alone, and of "john.smith2"
    names = {
        local, local.split("+", 1)[0], *re.split(r"[._+-]", local),
        *re.findall(r"[^\W\d_]+", local),
    }  # fmt: skip
    # accents and dots set aside: "SMİTH" folds to "smi̇th"
    folded = "".join(
        char
        for char in unicodedata.normalize("NFKD", shown.casefold())
        if unicodedata.category(char) != "Mn"
    )
    # Cyrillic and Greek letters drawn like Latin ones read as those, and a
    # mark set inside a name ("sm-ith") does not part it
    latin = folded.translate(_LOOKALIKES)
    readings = {
        reading
        for shown_as in (latin, re.sub(r"[\W_]+", "", latin))
        for reading in (shown_as, *(shown_as.translate(leet) for leet in _LEET))
    }
    if any(
        len(name) >= 3 and name in reading for name in names for reading in readings
    ):
        return "contains the email's name, before the @"
    # Imported here: its word lists take 13 MiB, which every process of the
    # command line (the workers too) would carry for the rare password set.
    from zxcvbn import zxcvbn

    # what the rules above let through and a guesser tries first: common
    # passwords and words, keyboard runs, dates, repeats
    guessed = zxcvbn(
        shown[:_GUESS_CHECKED],
        user_inputs=[*names, *_OUR_WORDS],
        max_length=_GUESS_CHECKED,
    )
    if guessed["score"] < _SCORE_NEEDED:
        why = guessed["feedback"].get("warning") or "a pattern guessers try early"
        return f"is too easy to guess ({why.rstrip('.')})"
    return None


# what a guesser aiming at this service tries first
_OUR_WORDS = ("tlounge", "t-lounge", "lounge", "coworking", "booking", "admin")
# controls, format characters (zero-width, bidi), line breaks, private use
_UNSEEN = frozenset({"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"})
# digits and signs written for letters; "1" and "!" read as i or as l
# lower-case Cyrillic and Greek letters that a reader takes for Latin ones
_LOOKALIKES = str.maketrans(
    "аеорсухѕіјԁԛԝһнкмтвпαεικνορτυχ",
    "aeopcyxsijdqwhhkmtbnaeikvoptux",
)
_LEET = (
    str.maketrans("0134579@$!", "oieastgasi"),
    str.maketrans("0134579@$!", "oleastgasl"),
)
