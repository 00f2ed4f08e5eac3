--- A small HTTP/1.1 server for the emulator: one coroutine per connection over
-- `socket.select`, non-blocking sockets (plain or lua-sec TLS), keep-alive and pipelining,
-- Content-Length and chunked request bodies, caps on head and body size, idle timeouts.
-- Handlers run inside the connection's coroutine and may call `server.sleep(seconds)` without
-- blocking other connections. A handler error becomes a 500 and the server keeps serving.
local socket = require("socket")

local gettime, select = socket.gettime, socket.select
local co_create, co_resume, co_yield, co_status = coroutine.create, coroutine.resume, coroutine.yield,
  coroutine.status
local concat, format = table.concat, string.format

local M = {}

local REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [301] = "Moved Permanently", [302] = "Found", [400] = "Bad Request", [401] = "Unauthorized",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed", [406] = "Not Acceptable",
  [408] = "Request Timeout", [411] = "Length Required", [413] = "Request Entity Too Large",
  [414] = "Request-URI Too Long", [415] = "Unsupported Media Type", [417] = "Expectation Failed",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [501] = "Not Implemented", [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
  [505] = "HTTP Version Not Supported",
}
M.REASONS = REASONS

local DEFAULTS = {
  host = "127.0.0.1", port = 0, idle_timeout = 30, request_timeout = 30, max_body = 1024 * 1024,
  max_head = 32 * 1024, max_line = 8 * 1024, max_conns = 768, backlog = 128,
}

local Server = {}
Server.__index = Server

--- Wait for a socket to be readable (`"r"`) or writable (`"w"`), from inside a connection coroutine.
-- @treturn boolean false when the deadline passed or the server is stopping
local function wait(mode, sock, deadline)
  return co_yield(mode, sock, deadline)
end

--- Sleep inside a connection coroutine without blocking the others.
-- @tparam number seconds
function M.sleep(seconds)
  if seconds > 0 then co_yield("sleep", nil, gettime() + seconds) end
end

--- Create a server. Call `start()` then `run(should_stop)`.
-- @tparam table opts `host`, `port`, `handler(req) -> response`, `tls` ({cert=, key=}),
--   `log(msg)`, `clock()` (epoch seconds for the Date header), `idle_timeout`, `request_timeout`,
--   `max_body`, `max_head`
-- @treturn Server
function M.new(opts)
  local self = setmetatable({ waits = {}, conns = 0, next_conn = 0, accept_pause = 0 }, Server)
  for k, v in pairs(DEFAULTS) do self[k] = v end
  for k, v in pairs(opts) do self[k] = v end
  self.log = self.log or function() end
  -- the clock for the Date header (the emulator passes its own, offset clock)
  self.clock = self.clock or os.time
  return self
end

--- Bind and listen. Returns the base URL (`http://127.0.0.1:PORT`, `https://[::1]:PORT`).
-- @treturn string|nil url
-- @treturn string error
function Server:start()
  if self.tls then
    local ssl = require("ssl")
    local ctx, err = ssl.newcontext{
      mode = "server", protocol = "any", key = self.tls.key, certificate = self.tls.cert,
      options = { "all", "no_sslv2", "no_sslv3", "no_tlsv1", "no_tlsv1_1" },
    }
    if not ctx then return nil, "TLS: " .. tostring(err) end
    self.ssl, self.ctx = ssl, ctx
  end
  local sock, err = socket.bind(self.host, self.port, self.backlog)
  if not sock then return nil, ("cannot listen on %s port %s: %s"):format(self.host, self.port, err) end
  sock:settimeout(0)
  self.sock = sock
  local ip, port = sock:getsockname()
  self.port = tonumber(port)
  local hostpart = ip:find(":") and ("[" .. ip .. "]") or ip
  self.url = ("%s://%s:%d"):format(self.tls and "https" or "http", hostpart, self.port)
  return self.url
end

-- Connection I/O ---------------------------------------------------------------------

local Conn = {}
Conn.__index = Conn

local RETRY = { timeout = "r", wantread = "r", wantwrite = "w" }

--- Read more bytes into the connection buffer. Returns true, or false and a reason.
function Conn:fill(deadline)
  while true do
    local data, err, partial = self.sock:receive(65536)
    local got = data or partial
    if got and #got > 0 then
      self.buf = self.buf .. got
      return true
    end
    local mode = RETRY[err]
    if not mode then return false, err end
    if err == "timeout" and self.tls then mode = "r" end
    if not wait(mode, self.sock, deadline) then return false, "timeout" end
  end
end

--- Send all of `data`. Returns true, or false and a reason.
function Conn:send(data)
  local i, n = 1, #data
  local deadline = gettime() + self.server.idle_timeout
  while i <= n do
    local last, err, sent = self.sock:send(data, i)
    if last then
      i = last + 1
    else
      if sent and sent >= i then
        i = sent + 1
        deadline = gettime() + self.server.idle_timeout
      end
      local mode = RETRY[err]
      if not mode then return false, err end
      if err == "timeout" then mode = "w" end
      if not wait(mode, self.sock, deadline) then return false, "timeout" end
    end
  end
  return true
end

--- Close politely: stop sending, then drain what the client is still sending for a moment, so
-- that an error answer is not lost to a TCP reset.
function Conn:close(linger)
  if self.closed then return end
  self.closed = true
  if linger and not self.tls then
    self.sock:shutdown("send")
    local deadline = gettime() + 1
    local drained = 0
    while drained < 4 * 1024 * 1024 do
      local data, err, partial = self.sock:receive(65536)
      local got = data or partial
      drained = drained + (got and #got or 0)
      if err == "closed" or (err and err ~= "timeout") then break end
      if err == "timeout" and not wait("r", self.sock, deadline) then break end
    end
  end
  self.sock:close()
end

--- Close at once with a TCP reset (SO_LINGER 0) where the socket allows it.
function Conn:reset()
  if self.closed then return end
  self.closed = true
  local raw = self.raw or self.sock
  pcall(raw.setoption, raw, "linger", { on = true, timeout = 0 })
  raw:close()
end

-- Request parsing ---------------------------------------------------------------------

local TOKEN = "^[!#$%%&'*+.^_`|~%w%-]+$"

local function pct_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end
M.pct_decode = pct_decode

-- Parse the head (request line and header lines, without the blank line).
-- Returns a request table or nil, status, message.
local function parse_head(head, max_line)
  local lines = {}
  for line in (head .. "\n"):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line:gsub("\r$", "")
  end
  local reqline = lines[1] or ""
  if #reqline > max_line then return nil, 414, "request line too long" end
  local method, target, version = reqline:match("^(%S+) (%S+) HTTP/(%d%.%d)$")
  if not method then
    if reqline:match("^%S+ %S+ HTTP/%S+$") then return nil, 505, "unsupported HTTP version" end
    return nil, 400, "malformed request line"
  end
  if not method:match(TOKEN) then return nil, 400, "malformed method" end
  if version ~= "1.1" and version ~= "1.0" then return nil, 505, "unsupported HTTP version" end
  if target:find("[%z\1-\32\127-\255]") then return nil, 400, "malformed request target" end
  local abs = target:match("^[hH][tT][tT][pP][sS]?://[^/?#]*(.*)$")
  if abs then target = abs ~= "" and abs or "/" end
  if target:sub(1, 1) ~= "/" then return nil, 400, "malformed request target" end
  local headers, list = {}, {}
  for i = 2, #lines do
    local line = lines[i]
    if line:match("^[ \t]") then return nil, 400, "obsolete line folding" end
    local name, value = line:match("^([^:]+):(.*)$")
    if not name or not name:match(TOKEN) then return nil, 400, "malformed header line" end
    if value:find("[%z\1-\8\10-\31\127]") then return nil, 400, "control character in a header value" end
    value = value:match("^[ \t]*(.-)[ \t]*$")
    name = name:lower()
    list[#list + 1] = { name, value }
    if headers[name] and name ~= "content-length" then
      headers[name] = headers[name] .. ", " .. value
    elseif headers[name] and name == "content-length" and headers[name] ~= value then
      return nil, 400, "conflicting Content-Length"
    else
      headers[name] = value
    end
  end
  local rawpath, query = target:match("^([^?#]*)%??([^#]*)")
  return {
    method = method, target = target, version = version, headers = headers, header_list = list,
    rawpath = rawpath, path = pct_decode(rawpath), query = query or "",
  }
end

-- Decode a chunked body from buf starting at pos. Returns body, next_pos; or nil, "more"; or nil, status, msg.
local function dechunk(buf, pos, max_body)
  local parts, total = {}, 0
  while true do
    local eol = buf:find("\r\n", pos, true)
    if not eol then
      if #buf - pos > 1024 then return nil, 400, "malformed chunk size" end
      return nil, "more"
    end
    local size_hex = buf:sub(pos, eol - 1):match("^(%x+)[ \t]*;?.*$")
    if not size_hex or #size_hex > 8 then return nil, 400, "malformed chunk size" end
    local size = tonumber(size_hex, 16)
    pos = eol + 2
    if size == 0 then
      -- trailers up to an empty line
      while true do
        local e = buf:find("\r\n", pos, true)
        if not e then return nil, "more" end
        local line = buf:sub(pos, e - 1)
        pos = e + 2
        if line == "" then return concat(parts), pos end
      end
    end
    total = total + size
    if total > max_body then return nil, 413, "body too large" end
    if #buf < pos + size + 1 then return nil, "more" end
    if buf:sub(pos + size, pos + size + 1) ~= "\r\n" then return nil, 400, "malformed chunk" end
    parts[#parts + 1] = buf:sub(pos, pos + size - 1)
    pos = pos + size + 2
  end
end

local function error_page(status, msg)
  local reason = REASONS[status] or "Error"
  local body = ("<h1>%s (%d)</h1>\n"):format(reason, status)
  if msg then body = body .. "<p>" .. msg:gsub("[<>&]", "") .. "</p>\n" end
  return { status = status, headers = { { "Content-Type", "text/html; charset=utf-8" } }, body = body, close = true }
end
M.error_page = error_page

local function connection_tokens(h)
  local set = {}
  for tok in (h or ""):lower():gmatch("[^,%s]+") do set[tok] = true end
  return set
end

-- Serialize the status line and headers.
local function head_bytes(resp, body_len, close, http10, now)
  local status = resp.status
  local out = { format("HTTP/1.1 %d %s\r\n", status, resp.reason or REASONS[status] or "Unknown") }
  out[#out + 1] = "Date: " .. os.date("!%a, %d %b %Y %H:%M:%S GMT", now) .. "\r\n"
  for _, h in ipairs(resp.headers or {}) do
    out[#out + 1] = h[1] .. ": " .. h[2] .. "\r\n"
  end
  if not (status == 204 or status == 304 or status < 200) then
    out[#out + 1] = "Content-Length: " .. body_len .. "\r\n"
  end
  if close then
    out[#out + 1] = "Connection: close\r\n"
  elseif http10 then
    out[#out + 1] = "Connection: keep-alive\r\n"
  end
  out[#out + 1] = "\r\n"
  return concat(out)
end

--- Write a response. Handles HEAD, the `truncate` (half body then close), `drop` (close
-- without a byte), `reset` and
-- `stream` ({chunk=, total=}) behaviours used by the fault kinds.
local function write_response(conn, req, resp, close)
  if resp.reset then
    conn:reset()
    return false
  end
  if resp.drop then
    conn:close(false)
    return false
  end
  local body = resp.body or ""
  local is_head = req and req.method == "HEAD"
  if resp.stream then
    local total, chunk = resp.stream.total, resp.stream.chunk
    local head = head_bytes(resp, total, close, req and req.version == "1.0", conn.server.clock())
    if not conn:send(head) then return false end
    if is_head then return true end
    local sent = 0
    while sent < total do
      local n = math.min(#chunk, total - sent)
      if not conn:send(n == #chunk and chunk or chunk:sub(1, n)) then return false end
      sent = sent + n
    end
    return true
  end
  local head = head_bytes(resp, #body, close or resp.truncate, req and req.version == "1.0",
    conn.server.clock())
  if resp.truncate then
    conn:send(head .. body:sub(1, #body // 2))
    conn:close(false)
    return false
  end
  if is_head or resp.status == 204 or resp.status == 304 then body = "" end
  return conn:send(head .. body)
end

-- Read more of a request: true, or false and the error answer (nil when the peer went away).
local function more(conn, deadline)
  local ok, why = conn:fill(deadline)
  if ok then return true end
  if why == "timeout" then return false, error_page(408, "request timeout") end
  return false
end

-- Read one request from the connection. Returns req; or nil (closed quietly); or nil, response (error answer).
local function read_request(conn)
  local srv = conn.server
  -- skip empty lines before a request line (RFC 9112 2.2)
  local deadline = gettime() + srv.idle_timeout
  while true do
    conn.buf = conn.buf:gsub("^\r?\n", "")
    if #conn.buf > 0 then break end
    local ok = conn:fill(deadline)
    if not ok then return nil end
  end
  if not conn.tls and conn.buf:byte(1) == 0x16 then
    -- A TLS ClientHello on the plain-HTTP port (https:// to an http emulator): answer at
    -- once, as a real server does, instead of waiting for a request line that never comes.
    return nil, error_page(400, "TLS handshake on a plain HTTP port")
  end
  deadline = gettime() + srv.request_timeout
  local head_end, body_start
  while true do
    local s, send = conn.buf:find("\r?\n\r?\n")
    if s then
      head_end, body_start = s - 1, send + 1
      break
    end
    if #conn.buf > srv.max_head then
      local line_end = conn.buf:find("\n", 1, true)
      if not line_end and #conn.buf > srv.max_line then return nil, error_page(414, "request line too long") end
      return nil, error_page(431, "header section too large")
    end
    local ok, e = more(conn, deadline)
    if not ok then return nil, e end
  end
  local first_line = conn.buf:find("\n", 1, true)
  if first_line and first_line > srv.max_line then return nil, error_page(414, "request line too long") end
  if head_end > srv.max_head then return nil, error_page(431, "header section too large") end
  local req, status, msg = parse_head(conn.buf:sub(1, head_end), srv.max_line)
  if not req then return nil, error_page(status, msg) end
  local h = req.headers
  local te, cl = h["transfer-encoding"], h["content-length"]
  local body
  if te then
    if cl then return nil, error_page(400, "both Transfer-Encoding and Content-Length") end
    if te:lower() ~= "chunked" then return nil, error_page(501, "unsupported transfer coding") end
    if req.version == "1.1" and (h["expect"] or ""):lower() == "100-continue" then
      if not conn:send("HTTP/1.1 100 Continue\r\n\r\n") then return nil end
    end
    while true do
      local b, next_pos, m = dechunk(conn.buf, body_start, srv.max_body)
      if b then
        body = b
        conn.buf = conn.buf:sub(next_pos)
        break
      end
      if next_pos ~= "more" then return nil, error_page(next_pos, m) end
      local ok, e = more(conn, deadline)
      if not ok then return nil, e end
    end
  else
    local n = 0
    if cl then
      if not cl:match("^%d+$") or #cl > 15 then return nil, error_page(400, "invalid Content-Length") end
      n = tonumber(cl)
    end
    if n > srv.max_body then return nil, error_page(413, "body too large") end
    if n > 0 and #conn.buf < body_start + n - 1 and req.version == "1.1"
      and (h["expect"] or ""):lower() == "100-continue" then
      if not conn:send("HTTP/1.1 100 Continue\r\n\r\n") then return nil end
    end
    while #conn.buf < body_start + n - 1 do
      local ok, e = more(conn, deadline)
      if not ok then return nil, e end
    end
    body = conn.buf:sub(body_start, body_start + n - 1)
    conn.buf = conn.buf:sub(body_start + n)
  end
  req.body = body
  local ctoks = connection_tokens(h["connection"])
  if req.version == "1.0" then
    req.keep_alive = ctoks["keep-alive"] == true
  else
    req.keep_alive = not ctoks["close"]
  end
  return req
end

local function traceback(err)
  return debug.traceback(tostring(err), 2)
end

function Server:serve_conn(conn)
  if self.ctx then
    local tls, err = self.ssl.wrap(conn.sock, self.ctx)
    if not tls then
      conn.sock:close()
      self.log(("conn %d: TLS wrap failed: %s"):format(conn.id, tostring(err)))
      return
    end
    conn.raw, conn.sock, conn.tls = conn.sock, tls, true
    tls:settimeout(0)
    local deadline = gettime() + 10
    while true do
      local ok, herr = tls:dohandshake()
      if ok then break end
      local mode = RETRY[herr]
      if not mode or not wait(mode, tls, deadline) then
        self.log(("conn %d: TLS handshake failed: %s"):format(conn.id, tostring(herr)))
        conn:close(false)
        return
      end
    end
  end
  while not conn.closed do
    local req, errresp = read_request(conn)
    if not req then
      if errresp then
        self.log(("conn %d: %d %s"):format(conn.id, errresp.status, errresp.body:match("<p>(.-)</p>") or ""))
        write_response(conn, nil, errresp, true)
        conn:close(true)
      else
        conn:close(false)
      end
      return
    end
    req.conn = conn.id
    req.tls = conn.tls
    local ok, resp = xpcall(self.handler, traceback, req)
    if not ok then
      self.log(("conn %d: handler error: %s"):format(conn.id, tostring(resp)))
      resp = error_page(500)
      resp.body = "<h1>Server Error (500)</h1>\n"
      resp.close = false
    end
    local close = resp.close or not req.keep_alive or self.stopping
    if not write_response(conn, req, resp, close) then
      conn:close(false)
      return
    end
    if close then
      conn:close(false)
      return
    end
  end
end

function Server:spawn(client)
  self.next_conn = self.next_conn + 1
  client:settimeout(0)
  client:setoption("tcp-nodelay", true)
  local conn = setmetatable({ id = self.next_conn, sock = client, buf = "", server = self }, Conn)
  self.conns = self.conns + 1
  local co = co_create(function() self:serve_conn(conn) end)
  self:resume(co, conn)
end

function Server:resume(co, conn, ...)
  local ok, mode, sock, deadline = co_resume(co, ...)
  if not ok then
    self.log("connection coroutine failed: " .. traceback(mode))
  end
  if ok and co_status(co) == "suspended" then
    self.waits[co] = { mode = mode, sock = sock, deadline = deadline, conn = conn }
  else
    self.conns = self.conns - 1
    if conn and not conn.closed then
      conn.closed = true
      pcall(conn.sock.close, conn.sock)
    end
  end
end

--- Run one round of the scheduler: wait at most `max_wait` seconds for I/O, then resume
-- every connection that can proceed.
-- @tparam number max_wait seconds
function Server:step(max_wait)
  local now = gettime()
  local recvt, sendt = {}, {}
  local timeout = max_wait
  if self.conns < self.max_conns and now >= self.accept_pause then recvt[1] = self.sock end
  local dirty = {}
  for co, w in pairs(self.waits) do
    if w.mode == "r" then
      if w.sock.dirty and w.sock:dirty() then
        dirty[co] = true
        timeout = 0
      end
      recvt[#recvt + 1] = w.sock
    elseif w.mode == "w" then
      sendt[#sendt + 1] = w.sock
    end
    if w.deadline and w.deadline - now < timeout then timeout = w.deadline - now end
  end
  if timeout < 0 then timeout = 0 end
  local r, s = select(recvt, sendt, timeout)
  r, s = r or {}, s or {}
  if r[self.sock] then
    for _ = 1, 64 do
      if self.conns >= self.max_conns then break end
      local client, err = self.sock:accept()
      if not client then
        if err ~= "timeout" then
          self.log("accept failed: " .. tostring(err))
          self.accept_pause = gettime() + 0.1
        end
        break
      end
      self:spawn(client)
    end
  end
  now = gettime()
  local ready = {}
  for co, w in pairs(self.waits) do
    if (w.mode == "r" and (r[w.sock] or dirty[co])) or (w.mode == "w" and s[w.sock]) then
      ready[#ready + 1] = { co, true }
    elseif w.deadline and now >= w.deadline then
      ready[#ready + 1] = { co, w.mode == "sleep" }
    end
  end
  for _, item in ipairs(ready) do
    local co = item[1]
    local w = self.waits[co]
    self.waits[co] = nil
    self:resume(co, w.conn, item[2])
  end
end

--- Serve until `should_stop()` returns true; then close the listener and every connection.
-- @tparam function should_stop polled at least every `poll` seconds
-- @tparam[opt=0.2] number poll seconds
function Server:run(should_stop, poll)
  poll = poll or 0.2
  while not should_stop() do
    -- a fault in the scheduler itself must not take the emulator down: log it and go on
    local ok, err = xpcall(self.step, traceback, self, poll)
    if not ok then
      self.log("scheduler error: " .. tostring(err))
      socket.sleep(0.01)
    end
  end
  self.stopping = true
  self.sock:close()
  for co, w in pairs(self.waits) do
    self.waits[co] = nil
    if w.conn and not w.conn.closed then
      w.conn.closed = true
      pcall(w.conn.sock.close, w.conn.sock)
    end
  end
end

M.Server = Server
M.parse_head = parse_head
M.dechunk = dechunk
return M
