"""filtermail: the SMTP content filter that only lets OpenPGP-encrypted mail pass.

The decisions are pure and I/O-free (``openpgp``, ``mime``, ``verdicts``,
``ratelimit``); the SMTP glue only feeds them envelopes and message bytes and
turns their verdicts into replies.
"""
