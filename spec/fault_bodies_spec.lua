-- Hostile answers the emulator cannot produce, from a tiny canned-answer server: a server
-- that echoes the password into its error (across the cut of a long message), a 400 with
-- hundreds of validation fields, JSON nested past the decoder's depth limit. Each must give
-- a clean aap.Error (and no memory error: scripts/valgrind.sh runs this spec too).
local helper = require("helper")
local cjson = require("cjson.safe")

-- A one-connection-at-a-time HTTP server that answers every request with the status and
-- body in its files (for bodies the emulator never sends: a server echoing a secret).
local ECHO_SERVER = [[
local socket = require("socket")
local dir = arg[1]
local srv = assert(socket.bind("127.0.0.1", 0))
local _, port = srv:getsockname()
io.stdout:write("http://127.0.0.1:", port, "\n")
io.stdout:flush()
local function slurp(p)
  local f = io.open(p, "rb")
  local s = f and f:read("a") or ""
  if f then f:close() end
  return s
end
-- It exits on its own after 30 s without a request, so a crashed spec cannot leave it behind.
srv:settimeout(0.5)
local idle = os.time()
while os.time() - idle < 30 do
  local c = srv:accept()
  if c then
    idle = os.time()
    c:settimeout(5)
    local len = 0
    while true do
      local line = c:receive("*l")
      if not line or line == "" then break end
      local n = line:lower():match("^content%-length:%s*(%d+)")
      if n then len = tonumber(n) end
    end
    if len > 0 then c:receive(len) end
    local status, body = slurp(dir .. "/status"), slurp(dir .. "/body")
    c:send(("HTTP/1.1 %s X\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"):format(
      status, slurp(dir .. "/type"), #body, body))
    c:close()
  end
end
]]

local function start_echo(dir)
  helper.writefile(dir .. "/echo.lua", ECHO_SERVER)
  local h = assert(io.popen(("echo $$; exec lua5.4 %s %s"):format(helper.shquote(dir .. "/echo.lua"),
    helper.shquote(dir))))
  local pid, url = h:read("l"), h:read("l")
  assert(url and url:match("^http://"), "echo server did not start")
  return { url = url, stop = function() os.execute("kill " .. pid); h:close() end,
           answer = function(status, body, ctype)
             helper.writefile(dir .. "/status", tostring(status))
             helper.writefile(dir .. "/body", body)
             helper.writefile(dir .. "/type", ctype or "application/json")
           end }
end

describe("hostile server answers", function()
  local aap = require("aap")
  local dir, echo, s

  setup(function()
    dir = helper.tmpdir()
    echo = start_echo(dir)
  end)
  teardown(function()
    if s then s:close() end
    echo.stop()
    helper.cleanup()
  end)

  local password = "Echoed-Pa55word-0123456789"
  local function session()
    if not s then
      s = assert(aap.connect({ url = echo.url, username = "admin", password = password, flavor = "gateway",
                               retries = 0 }))
    end
    return s
  end

  it("keeps a password the server echoes out of the error, even where the message is cut", function()
    -- Whole, at the start, and straddling the 300-byte cut of a message.
    for _, pad in ipairs({ 0, 100, 280, 290, 295 }) do
      echo.answer(400, cjson.encode({ detail = ("x"):rep(pad) .. password .. " is wrong" }))
      local res, err = session():me()
      assert.is_nil(res)
      local text = tostring(err)
      assert.is_nil(text:find(password, 1, true), "the password in the error")
      -- A cut secret still leaks its start: no 8-byte prefix of it may survive.
      assert.is_nil(text:find(password:sub(1, 8), 1, true),
        ("the start of the password survives in the error (pad %d): %s"):format(pad, text))
    end
  end)

  -- In a child process: a crash there is this test's failure, not the end of the suite.
  it("turns a 400 with hundreds of validation fields into one bounded line and every field", function()
    local script = dir .. "/fields.lua"
    helper.writefile(script, ([==[
package.path = %q .. "/lua/?.lua;" .. package.path
package.cpath = (os.getenv("AAP_CPATH") or %q) .. "/?.so;" .. package.cpath
local aap = require("aap")
local s = assert(aap.connect({ url = arg[1], username = "admin", password = "pw-0123456789", flavor = "gateway",
                               retries = 0 }))
local _, err = s:create_token({ description = "x" })
local n = 0
for _ in pairs(err.fields or {}) do n = n + 1 end
io.write(err.code, " ", n, " ", #err.message, " ", tostring(err):find("\n") and "multi" or "one", "\n")
s:close()
]==]):format(helper.ROOT, helper.ROOT .. "/build"))
    for _, n in ipairs({ 5, 30, 300 }) do
      local fields = {}
      for i = 1, n do fields["field" .. i] = { "bad value " .. i } end
      echo.answer(400, cjson.encode(fields))
      local p = io.popen(("lua5.4 %s %s 2>&1; echo \"exit $?\""):format(helper.shquote(script), echo.url))
      local out = p:read("a")
      p:close()
      local code, count, len, lines = out:match("^(%S+) (%d+) (%d+) (%S+)\n")
      assert.is_string(code, ("%d fields: the client died (bug B10, a Lua stack overflow in "
        .. "csrc/errors.c json_message): %s"):format(n, out))
      assert.equal("invalid", code)
      assert.equal(n, tonumber(count))
      assert.is_true(tonumber(len) <= 303, "message bounded: " .. len)
      assert.equal("one", lines)
      assert.truthy(out:find("exit 0", 1, true), out)
    end
  end)

  it("refuses JSON nested past the decoder's depth limit as a bad response", function()
    echo.answer(200, ("["):rep(5000) .. ("]"):rep(5000))
    local res, err = session():me()
    assert.is_nil(res)
    assert.equal("bad_response", err.code)
    echo.answer(400, ("{\"a\":"):rep(3000) .. "1" .. ("}"):rep(3000))
    res, err = session():me()
    assert.is_nil(res)
    assert.equal("invalid", err.code)
  end)
end)
