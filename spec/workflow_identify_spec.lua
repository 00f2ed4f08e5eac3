-- aap.workflow.identify and prove_id: which token a value is, proven or not at all. A
-- scripted session stands in for aap.connect, so every case (the one that moved, several
-- moving, none, a gateway that ignores the user filter) is exact.
local aap = require("aap")
local workflow = require("aap.workflow")
local state = require("aap.state")

-- rounds: a list of listings, each a list of {id, user, last_used}; every s:tokens() call
-- returns the next one. Records the calls made.
local function scripted(rounds, me)
  local calls = { connects = 0, lists = 0, filters = {} }
  local real = aap.connect
  aap.connect = function(opts)
    calls.connects = calls.connects + 1
    calls.bearer = opts.token
    local sess = {}
    function sess.me() return me or { id = 2, username = "admin" } end
    function sess.tokens(_, filters)
      calls.lists = calls.lists + 1
      calls.filters[#calls.filters + 1] = filters
      local round = rounds[math.min(calls.lists, #rounds)]
      local out = {}
      for i, t in ipairs(round) do
        out[i] = { id = t[1], user = t[2], last_used = t[3] and 1 or nil, raw = { last_used = t[3] } }
      end
      return out
    end
    function sess.close() end
    return sess
  end
  return calls, function() aap.connect = real end
end

describe("workflow.identify", function()
  local restore
  after_each(function() if restore then restore() end restore = nil end)

  it("names the one token whose last_used moved while the value was used", function()
    local calls
    calls, restore = scripted({
      { { 1, 2, "2026-01-01T00:00:00.000001Z" }, { 5, 2, "2026-12-02T10:00:00.100000Z" }, { 7, 2, nil } },
      { { 1, 2, "2026-01-01T00:00:00.000001Z" }, { 5, 2, "2026-12-02T10:00:00.200000Z" }, { 7, 2, nil } },
    })
    local tok = assert(workflow.identify({ url = "http://127.0.0.1:1" }, "the-value"))
    assert.equal(5, tok.id)
    assert.equal("the-value", calls.bearer)
    assert.equal(2, calls.lists)
    -- only the top-level list with the user filter: nested users/{id}/ lists ignore filters
    assert.equal(2, calls.filters[1].user)
  end)

  it("tries again when other tokens of the user moved too, and takes the one that alone moved", function()
    restore = select(2, scripted({
      { { 1, 2, "a1" }, { 5, 2, "b1" } },
      { { 1, 2, "a2" }, { 5, 2, "b2" } },
      { { 1, 2, "a2" }, { 5, 2, "b3" } },
    }))
    local tok = assert(workflow.identify({ url = "http://127.0.0.1:1" }, "v"))
    assert.equal(5, tok.id)
  end)

  it("gives up with 'ambiguous' rather than guess when several keep moving", function()
    local rounds = {}
    for i = 1, workflow.IDENTIFY_TRIES + 2 do rounds[i] = { { 1, 2, "a" .. i }, { 5, 2, "b" .. i } } end
    local calls
    calls, restore = scripted(rounds)
    local tok, err = workflow.identify({ url = "http://127.0.0.1:1" }, "v")
    assert.is_nil(tok)
    assert.equal("ambiguous", err.code)
    assert.matches("2 tokens", err.message)
    assert.equal(workflow.IDENTIFY_TRIES + 1, calls.lists)
  end)

  it("proves nothing when no last_used moved (a gateway that does not record it)", function()
    restore = select(2, scripted({ { { 1, 2, "a" }, { 5, 2, "b" } } }))
    local tok, err = workflow.identify({ url = "http://127.0.0.1:1" }, "v")
    assert.is_nil(tok)
    assert.equal("not_found", err.code)
  end)

  it("ignores other users' tokens a gateway lists despite the filter", function()
    restore = select(2, scripted({
      { { 3, 9, "x1" }, { 5, 2, "b1" } },
      { { 3, 9, "x2" }, { 5, 2, "b2" } },
    }))
    local tok = assert(workflow.identify({ url = "http://127.0.0.1:1" }, "v"))
    assert.equal(5, tok.id)
  end)

  it("does not count a token that appeared unused meanwhile", function()
    restore = select(2, scripted({
      { { 5, 2, "b1" } },
      { { 5, 2, "b2" }, { 8, 2, nil } },
    }))
    assert.equal(5, assert(workflow.identify({ url = "http://127.0.0.1:1" }, "v")).id)
  end)
end)

describe("workflow.prove_id", function()
  local restore
  after_each(function() if restore then restore() end restore = nil end)

  it("takes the id recorded with the value's fingerprint, asking nothing", function()
    local calls
    calls, restore = scripted({ {} })
    local id, how = workflow.prove_id({}, "value-A", { id = 42, fp = state.fingerprint("value-A") })
    assert.equal(42, id)
    assert.equal("recorded", how)
    assert.equal(0, calls.connects)
  end)

  it("does not trust a record without a fingerprint, or with another value's", function()
    for _, rec in ipairs({ { id = 42 }, { id = 42, fp = state.fingerprint("value-B") } }) do
      local calls
      calls, restore = scripted({ { { 42, 2, "a" }, { 43, 2, "b1" } }, { { 42, 2, "a" }, { 43, 2, "b2" } } })
      local id, how = workflow.prove_id({}, "value-A", rec)
      assert.equal(43, id)
      assert.equal("used", how)
      assert.equal(1, calls.connects)
      restore()
      restore = nil
    end
  end)

  it("passes identify's refusal on", function()
    restore = select(2, scripted({ { { 42, 2, "a" } } }))
    local id, err = workflow.prove_id({}, "value-A", nil)
    assert.is_nil(id)
    assert.equal("not_found", err.code)
  end)
end)
