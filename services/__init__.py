"""chatmail-services: Twisted daemons that give a stock Postfix and Dovecot chatmail relay semantics."""
