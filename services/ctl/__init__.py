"""chatmailctl: the operator's command line (config, accounts, registration, queue)."""
