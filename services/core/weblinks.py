"""What the web front publishes and others name: its URL, the DCACCOUNT code,
the MTA-STS policy (RFC 8461). Shared by chatmail-web (which serves them) and
chatmailctl (which prints invites and the `_mta-sts` record's id)."""

MTA_STS_MAX_AGE = 2419200  # 28 days, as MTA-STS deployments commonly use


def public_url(config) -> str:
    return config.web.public_url or f"https://{config.mail_domain}"


def dcaccount_url(config, token=None) -> str:
    query = f"?token={token}" if token else ""
    return f"DCACCOUNT:{public_url(config)}/new{query}"


def mta_sts(domain: str) -> bytes:
    return (f"version: STSv1\r\nmode: enforce\r\nmx: {domain}\r\n"
            f"max_age: {MTA_STS_MAX_AGE}\r\n").encode("ascii")
