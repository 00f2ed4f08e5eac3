#!/usr/bin/env lua5.4
-- A time-bounded fuzz of the .env reader/writer (aap.env) over hostile existing files:
-- random byte soup mixed with real dotenv syntax (quotes left open, CRLF, BOM, `export`,
-- duplicates, comments, NUL), then random set/unset edits written with env.update.
-- Properties, for every round:
--   * parse(text):serialize() == text (an untouched file keeps every byte);
--   * after the edits, get(k) is the value set for every key written, nil for every key
--     removed, and a re-parse of the written file gives the same answers (stable);
--   * every line of the original that does not assign a key we wrote or removed is still
--     in the file, in order;
--   * every few rounds, bash `set -a; . file` reads the written keys as env.get does.
-- Usage: lua5.4 fuzz/env_fuzz.lua [seconds] [seed]   (seed defaults to the clock; it is
-- printed, so a failure can be replayed). Exits 1 on the first failed property.
local root = (arg[0]:match("^(.*)/fuzz/[^/]*$")) or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("AAP_CPATH") or (root .. "/build")) .. "/?.so;" .. package.cpath
local env = require("aap.env")
local aap = require("aap")

local seconds = tonumber(arg[1]) or 30
local seed = math.tointeger(tonumber(arg[2])) or math.floor(aap.os.now() * 1000) % 2147483647
math.randomseed(seed)
local rand = math.random
print(("env fuzz: seed %d, %ds (replay: lua5.4 fuzz/env_fuzz.lua %d %d)"):format(seed, seconds, seconds, seed))

local function shquote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local PIECES = { "export ", "#", " ", "\t", "=", "'", '"', "\\", "$", "`", "${X}", "\r\n", "\n", "\r",
                 "\239\187\191", "\0", "KEY", "FZ_A", "FZ_B", "a b", "é", "#c", " # c", "==", "\\n", "'\"'" }
local function soup(n)
  local out = {}
  for i = 1, n do
    if rand(3) == 1 then out[i] = string.char(rand(0, 255)) else out[i] = PIECES[rand(#PIECES)] end
  end
  return table.concat(out)
end

local VALUE_CHARS = {}
for c in ("abcXYZ019_-./:@%+,=~ \t'\"\\$`#!*?[]{}();&|<>^"):gmatch(".") do VALUE_CHARS[#VALUE_CHARS + 1] = c end
for _, u in ipairs({ "é", "ß", "→", "😀" }) do VALUE_CHARS[#VALUE_CHARS + 1] = u end
local function value()
  local out = {}
  for i = 1, rand(0, 24) do out[i] = VALUE_CHARS[rand(#VALUE_CHARS)] end
  return table.concat(out)
end

local KEYS = { "FZ_A", "FZ_B", "FZ_C", "KEY", "FZ_TOKEN", "FZ_lower", "FZ_9" }

local function fail(what, text, detail)
  io.stderr:write(("env fuzz: FAILED (seed %d): %s\n  input: %q\n  %s\n"):format(seed, what, text, detail or ""))
  os.exit(1)
end

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -m 700 " .. shquote(dir)))
local path = dir .. "/.env"

-- The random text is shell code to bash: run it in the scratch directory with no PATH, so
-- that only builtins exist and any file it makes lands in the scratch directory.
local function jail(script)
  return ("cd %s && env -i PATH=/nonexistent /bin/bash -c %s"):format(shquote(dir), shquote(script))
end

-- Whether bash sources `text` cleanly (no error, nothing on stderr): garbage that bash
-- itself refuses says nothing about what aap.env wrote after it.
local function bash_clean(text)
  local f0 = assert(io.open(dir .. "/orig", "wb")); f0:write(text); f0:close()
  local p = io.popen(("%s 2>&1 && echo CLEAN"):format(jail("set -a; . ./orig >/dev/null")))
  local out = p:read("a")
  p:close()
  return out == "CLEAN\n"
end

local function bash_reads(keys)
  local q = {}
  for i, k in ipairs(keys) do q[i] = ('printf "%%s\\0" "${%s-<unset>}"'):format(k) end
  local p = io.popen(jail("set -a; . ./.env >/dev/null 2>&1; " .. table.concat(q, "; ")) .. " 2>/dev/null")
  local out = p:read("a")
  p:close()
  local vals, i = {}, 1
  for v in out:gmatch("([^%z]*)%z") do vals[keys[i]] = v; i = i + 1 end
  return vals
end

local deadline = aap.os.now() + seconds
local rounds, edits, bash_checks = 0, 0, 0
while aap.os.now() < deadline do
  rounds = rounds + 1
  local text = soup(rand(0, 40))
  local doc = env.parse(text)
  if doc:serialize() ~= text then fail("parse/serialize changed an untouched document", text) end

  -- Random edits through env.update (the atomic writer), recording what must hold.
  local f = assert(io.open(path, "wb")); f:write(text); f:close()
  local want, values, remove = {}, {}, {}
  for _ = 1, rand(1, 4) do
    local k = KEYS[rand(#KEYS)]
    if rand(4) == 1 then
      remove[#remove + 1] = k
      want[k] = false
      for i = #values, 1, -1 do if values[i][1] == k then table.remove(values, i) end end
    else
      local v = value()
      if env.quote(v) then
        for i = #values, 1, -1 do if values[i][1] == k then table.remove(values, i) end end
        for i = #remove, 1, -1 do if remove[i] == k then table.remove(remove, i) end end
        values[#values + 1] = { k, v }
        want[k] = v
      end
    end
  end
  local ok, err = env.update(path, values, { remove = remove })
  if not ok then
    -- A document with an unterminated quote at the end may refuse an append: that must be
    -- an aap.Error, and the file must be as it was.
    local now = io.open(path, "rb"):read("a")
    if now ~= text then fail("a refused update changed the file", text, tostring(err)) end
    if type(err) ~= "table" or not err.code then fail("update failed without an aap.Error", text, tostring(err)) end
  else
    edits = edits + 1
    local after = assert(env.read(path))
    local written = after:serialize()
    for k, v in pairs(want) do
      local got = after:get(k)
      if v == false and got ~= nil then fail("a removed key is still set: " .. k, text, written) end
      if v and got ~= v then
        fail(("%s reads back as %q, not %q"):format(k, tostring(got), v), text, written)
      end
    end
    if env.parse(written):serialize() ~= written then fail("the written file does not round-trip", text, written) end
    -- Lines of the original that assign none of the keys we touched survive, in order.
    local pos = 1
    for line in text:gmatch("[^\n]*\n") do
      local key = line:match("^%s*export%s+([%w_]+)%s*=") or line:match("^%s*([%w_]+)%s*=")
      local quoted = line:find("['\"]")
      if not key and not quoted and line:find("^%s*#") then
        local at = written:find(line, pos, true)
        if not at then fail("a comment line of the original was lost: " .. ("%q"):format(line), text, written) end
        pos = at + #line
      end
    end
    -- bash agrees on the written keys (a sample of rounds: it costs a process).
    -- (Not for CRLF files: bash keeps the CR in every value, whatever the quoting.)
    if rounds % 10 == 0 and not written:find("[%z\r]") and bash_clean(text) then
      local keys = {}
      for k, v in pairs(want) do if v then keys[#keys + 1] = k end end
      if #keys > 0 and #after:problems() == 0 then
        bash_checks = bash_checks + 1
        local got = bash_reads(keys)
        for _, k in ipairs(keys) do
          if got[k] ~= want[k] then fail(("bash reads %s as %q, aap.env wrote %q"):format(k, tostring(got[k]), want[k]),
            text, written) end
        end
      end
    end
  end
end
os.execute("rm -rf " .. shquote(dir))
print(("env fuzz: %d rounds, %d written, %d checked with bash: ok"):format(rounds, edits, bash_checks))
