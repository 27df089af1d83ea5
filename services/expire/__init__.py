"""chatmail-expire: the daily expiry of accounts and mail, and Dovecot's quota hook."""
