"""The files backend's PushQueue and Transfer: tokens in each account's
metadata.json (tokens.py), notifications in pending_notifications/ (queue.py)."""

import time

from ..roles import PushQueue, Transfer
from . import tokens
from .layout import Layout
from .queue import QueueDir


class FilesPushQueue(PushQueue):
    def __init__(self, layout: Layout, queue: QueueDir):
        self.layout = layout
        self.queue = queue

    def get_tokens(self, addr, now, max_age):
        return tokens.live(tokens.token_times(self.layout, addr, now), now, max_age)

    def add_token(self, addr, token, now, max_age, max_tokens):
        def change(times):
            times[token] = now
            keep = tokens.live(times, now, max_age)[:max_tokens]
            return {t: times[t] for t in keep}

        return tokens.change_tokens(self.layout, addr, now, change) is not None

    def remove_token(self, addr, token):
        def change(times):
            return None if times.pop(token, None) is None else times

        return bool(tokens.change_tokens(self.layout, addr, time.time(), change))

    def enqueue_push(self, addr, tokens, now, deadline):
        self.layout.home(addr)  # checks the address
        return self.queue.enqueue(addr, tokens, now, deadline) if tokens else 0

    def claim_push(self, now, limit, lease):
        return self.queue.claim(now, limit, lease)

    def reschedule_push(self, item, due, attempts):
        self.queue.reschedule(item, due, attempts)

    def complete_push(self, item):
        self.queue.complete(item)

    def iter_pending_notifications(self):
        return self.queue.pending()


class FilesTransfer(Transfer):
    def __init__(self, accounts, push: FilesPushQueue):
        self.accounts, self.layout, self.queue = accounts, push.layout, push.queue

    def import_account(self, addr, password_hash, last_login_day, enforce_e2ee):
        if self.accounts.get_password(addr) is not None:
            return False
        return self.accounts.create(addr, password_hash, last_login_day, enforce_e2ee)

    def token_times(self, addr):
        return tokens.token_times(self.layout, addr, time.time())

    def export_push(self):
        return (item for _, item in self.queue.items())

    def import_push(self, items, due):
        return self.queue.import_items(items, due)
