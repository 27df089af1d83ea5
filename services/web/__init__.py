"""chatmail-web: the relay's web front (/new, the DCACCOUNT page, autoconfig, MTA-STS)."""
