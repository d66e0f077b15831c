"""One mailbox, one spelling: the canonical form of an email address, for leads and staff accounts alike."""

from email_validator import EmailNotValidError, validate_email


def canonical_address(email: str) -> str:
    """email-validator's normalized form (domain through NFKC and IDNA, as Unicode), local part lower-cased.

    The domain stays in Unicode (`bær.no`, not `xn--br-1ia.no`): it is what staff recognise on the lead
    page and search for; the mailer encodes it for DNS when it sends. Raises EmailNotValidError.
    """
    normalized = validate_email(email, check_deliverability=False, allow_smtputf8=False).normalized
    local_part, _, domain = normalized.rpartition("@")
    return f"{local_part.lower()}@{domain}"


def normalize_email(email: str) -> str:
    """One mailbox, one spelling: `kari@ＬＨＬ.no`, `Kari@lhl.no` and `kari@lhl.no` are the same lead.

    Anything that is no valid address (a login attempt, say) is only trimmed and lower-cased.
    """
    address = email.strip()
    try:
        return canonical_address(address)
    except EmailNotValidError:
        return address.lower()
