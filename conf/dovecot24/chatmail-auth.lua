-- chatmail relay on Dovecot 2.4: accounts from doveauth's HTTP front-end.
-- Install as /etc/dovecot/chatmail-auth.lua; 90-chatmail.conf loads it as
-- `passdb lua` and `userdb lua` (package dovecot-auth-lua) and passes the
-- socket in lua_settings. It runs in Dovecot's auth-worker (root by default),
-- which reaches /run/chatmail/doveauth-http.socket (mode 0660, group vmail).
--
-- Dovecot's own Lua HTTP client talks over that UNIX socket (the URL's host is
-- never resolved). Bodies are tab-escaped fields; replies are `key TAB value`
-- lines. 200 = found (or created on first login), 404 = unknown or refused,
-- anything else (doveauth down: a status >= 9000 from the client itself; 503:
-- its store is down) is a temporary failure, never "wrong password".

local socket_path
local client

function script_init(settings)
  socket_path = settings and settings.socket
  if not socket_path or socket_path == "" then
    dovecot.i_error("chatmail-auth.lua: lua_settings { socket = ... } is missing")
    return 1
  end
  return 0
end

function script_deinit()
end

local function http()
  if client == nil then
    client = dovecot.http.client{
      request_timeout = "10s",
      request_max_attempts = "1",
      proxy_socket_path = socket_path,
    }
  end
  return client
end

-- status, payload of one request; a client-side error is a status >= 9000
local function ask(method, path, body)
  local ok, status, payload = pcall(function()
    local req = http():request{ url = "http://doveauth.invalid" .. path, method = method }
    if body then
      req:add_header("Content-Type", "text/plain")
      req:set_payload(body)
    end
    local resp = req:submit()
    return resp:status(), resp:payload()
  end)
  if not ok then
    return 9999, tostring(status)
  end
  return status, payload or ""
end

local function fields(payload)
  local t = {}
  for line in payload:gmatch("[^\n]+") do
    local k, v = line:match("^([^\t]*)\t(.*)$")
    if k then
      t[dovecot.tabunescape(k)] = dovecot.tabunescape(v)
    end
  end
  return t
end

local function failure(status, payload)
  return "doveauth: " .. status .. " " .. (payload or ""):gsub("%s+$", "")
end

-- 200 -> ok with the fields, 404 -> unknown, anything else -> internal failure
local function answer(status, payload, ok, unknown, internal)
  if status == 200 then
    return ok, fields(payload)
  elseif status == 404 then
    return unknown, ""
  end
  return internal, failure(status, payload)
end

function auth_passdb_lookup(req)
  local body = dovecot.tabescape(req.user) .. "\t" .. dovecot.tabescape(req.password or "")
  local status, payload = ask("POST", "/passdb", body)
  local a = dovecot.auth
  return answer(status, payload, a.PASSDB_RESULT_OK, a.PASSDB_RESULT_USER_UNKNOWN,
                a.PASSDB_RESULT_INTERNAL_FAILURE)
end

function auth_userdb_lookup(req)
  local status, payload = ask("POST", "/userdb", dovecot.tabescape(req.user))
  local a = dovecot.auth
  return answer(status, payload, a.USERDB_RESULT_OK, a.USERDB_RESULT_USER_UNKNOWN,
                a.USERDB_RESULT_INTERNAL_FAILURE)
end

-- `doveadm user '*'`: every account
function auth_userdb_iterate()
  local status, payload = ask("GET", "/users")
  local users = {}
  if status ~= 200 then
    dovecot.i_error("chatmail-auth.lua: " .. failure(status, payload))
    return users
  end
  for line in payload:gmatch("[^\n]+") do
    table.insert(users, dovecot.tabunescape(line))
  end
  return users
end
