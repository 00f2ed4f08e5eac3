-- aap.workflow.create and refresh against answers no gateway should give (an id that is not
-- a number, a value with a space, a newline or a NUL): a clean bad_response, the new token
-- deleted (by id, else by its marker), nothing written. A scripted session stands in for the
-- gateway, since the emulator never sends such answers.
local aap = require("aap")
local workflow = require("aap.workflow")

local function session(answer)
  local s = { deleted = {}, made = nil }
  function s.create_token(_, opts)
    s.made = { id = 31, description = opts.description }
    local tok = { kind = "personal", raw = { id = answer.id } }
    tok.id = math.type(answer.id) == "integer" and answer.id or nil
    tok.token = answer.token
    return tok
  end
  function s.tokens(_, filters)
    assert(filters.description__contains)
    if s.made and s.made.description:find(filters.description__contains, 1, true) then return { s.made } end
    return {}
  end
  function s.delete_token(_, id)
    s.deleted[#s.deleted + 1] = id
    if s.made and s.made.id == id then s.made = nil end
    return true
  end
  function s.flavor() return "gateway" end
  function s.stats() return { maybe_resent = 0 } end
  return s
end

describe("workflow.create with an answer it cannot use", function()
  local real_connect
  before_each(function()
    real_connect = aap.connect
    aap.connect = function() error("no token may be used before it is checked") end
  end)
  after_each(function() aap.connect = real_connect end)

  local cases = {
    { "an id that is not a number", { id = "seven", token = "abcDEF123" }, "id is not an integer" },
    { "a space in the value", { id = 31, token = "abc DEF" }, "characters no token has" },
    { "a newline in the value", { id = 31, token = "abc\nAAP_PASSWORD=x" }, "characters no token has" },
    { "a NUL in the value", { id = 31, token = "abc\0def" }, "characters no token has" },
    { "no value", { id = 31 }, "no token value" },
  }
  for _, c in ipairs(cases) do
    it("refuses " .. c[1] .. " and deletes the new token", function()
      local s = session(c[2])
      local tok, err = workflow.create(s, { url = "http://127.0.0.1:1" }, { description = "ci" })
      assert.is_nil(tok)
      assert.equal("bad_response", err.code)
      assert.matches(c[3], err.message, 1, true)
      assert.matches("the new token was deleted", err.message, 1, true)
      assert.same({ 31 }, s.deleted)
      assert.is_nil(s.made)
    end)
  end
end)

describe("workflow.token_value_ok", function()
  it("takes what gateways make and RFC 6750 allows, nothing else", function()
    for _, v in ipairs({ "abcDEF0123456789abcDEF01234567", "a-b.c_d~e+f/g==", ("x"):rep(4096) }) do
      assert.is_true(workflow.token_value_ok(v), v)
    end
    for _, v in ipairs({ "", " ", "a b", "a\tb", "a\nb", "a\0b", "a'b", 'a"b', "a#b", "a=b", ("x"):rep(4097), 7 }) do
      assert.is_false(workflow.token_value_ok(v), tostring(v))
    end
  end)
end)

describe("workflow.server_now", function()
  local function pinged(status, body, headers)
    return { request = function() return status, body, headers end }
  end

  it("is the gateway's clock: ping's pong, else its Date header, else the local clock", function()
    assert.equal(aap.parse_time("2030-01-02T03:04:05.5Z"),
      workflow.server_now(pinged(200, { pong = "2030-01-02T03:04:05.5Z" }, {})))
    assert.equal(1796288400,
      workflow.server_now(pinged(404, "no ping here", { date = "Thu, 03 Dec 2026 09:00:00 GMT" })))
    local before = aap.os.now()
    local t = workflow.server_now(pinged(nil, { code = "connect" }))
    assert.is_true(t >= before and t <= aap.os.now())
  end)
end)
