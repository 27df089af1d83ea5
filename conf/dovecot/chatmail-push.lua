-- chatmail relay: tell chatmail-metadata about every delivered message, so it
-- can send a push notification to each of the recipient's devices.
-- Install as /etc/dovecot/chatmail-push.lua; 91-chatmail-metadata.conf loads it
-- with Dovecot's push_notification_lua driver (LMTP deliveries only).
--
-- Setting /private/messagenew reaches chatmail-metadata over
-- mail_attribute_dict as `priv/<guid>/messagenew`; the value is not used.

function dovecot_lua_notify_begin_txn(user)
  return user
end

function dovecot_lua_notify_event_message_new(user, event)
  -- A message from the user to themselves (their other devices' copy of what
  -- they sent) is already known to the sender: no notification.
  local from = string.lower(event.from_address or "")
  if from == string.lower(user.username) then
    return
  end
  local mailbox = user:mailbox(event.mailbox)
  mailbox:sync()
  mailbox:metadata_set("/private/messagenew", "")
  mailbox:free()
end

function dovecot_lua_notify_end_txn(ctx, success)
end
