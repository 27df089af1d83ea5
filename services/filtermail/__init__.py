"""filtermail: the SMTP content filter that only lets OpenPGP-encrypted mail pass.

The decisions are pure and I/O-free (``openpgp``, ``mime``, ``policy``) and
take one parsed ``mail.Mail``; the SMTP edge (``server``, ``smtp``) feeds them
and turns their refusals into replies.
"""
