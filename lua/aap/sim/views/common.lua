--- What the resource views share: the pieces of serializers that several objects carry
-- (user summaries, masked secrets, nullable ids and times) and how a list view answers.
local json = require("aap.sim.json")
local lists = require("aap.sim.lists")
local store_mod = require("aap.sim.store")
local respond = require("aap.sim.respond")

local obj, null = json.obj, json.null
local iso = store_mod.iso

local M = {}

--- A user's `summary_fields` entry.
-- @tparam table u user
-- @return a JSON object
function M.user_summary(u)
  return obj{ "id", u.id, "username", u.username, "first_name", u.first_name, "last_name", u.last_name }
end

--- An ISO time, or null.
-- @tparam[opt] number us microseconds since the epoch
function M.time_or_null(us) return us and iso(us) or null end

--- An id, or null.
-- @param[opt] v
function M.id_or_null(v) return v or null end

--- What a secret reads as once stored (the controller's mask or the gateway's).
-- @tparam table ctx request context
-- @treturn string
function M.mask(ctx) return ctx.ctrl and "************" or "$encrypted$" end

--- A table's values ordered by id.
-- @tparam table t id -> object
-- @treturn table list
function M.sorted_values(t)
  local out = {}
  for _, v in pairs(t) do out[#out + 1] = v end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

--- A list view's answer: `candidates` filtered, ordered and paginated as the query says.
-- `unfiltered`: filters and ordering are not applied (candidates are served in their order),
-- only pagination, as DAB's user token sub-lists do.
-- @tparam table ctx request context
-- @tparam table model lists.MODELS entry
-- @tparam table candidates objects
-- @tparam function serialize `(ctx, object)` -> JSON object
-- @tparam table default_order
-- @tparam[opt] function search the controller's `?search=` predicate maker
-- @tparam[opt] boolean unfiltered
-- @treturn table response
function M.list_response(ctx, model, candidates, serialize, default_order, search, unfiltered)
  local store = ctx.store
  local ok, body = pcall(function()
    local items = candidates
    if not unfiltered then
      local pred = lists.compile(store, model, ctx.query, search)
      items = {}
      for _, r in ipairs(candidates) do
        if pred(r) then items[#items + 1] = r end
      end
      lists.order(store, model, items, ctx.params.order_by or ctx.params.order, default_order)
    end
    return lists.page{
      items = items, serialize = function(r) return serialize(ctx, r) end, path = ctx.req.rawpath,
      pairs = ctx.query, page_size = ctx.cfg.page_size, max_page_size = ctx.cfg.max_page_size,
    }
  end)
  if not ok then
    if getmetatable(body) == lists.ListError then respond.fail(ctx, body.status, body.detail) end
    error(body, 0)
  end
  return respond.respond(ctx, 200, body)
end

--- An empty page (the controller's activity streams).
-- @tparam table ctx request context
-- @treturn table response
function M.empty_list(ctx)
  return respond.respond(ctx, 200, lists.page{ items = {}, serialize = function() end, path = ctx.req.rawpath,
    pairs = ctx.query, page_size = ctx.cfg.page_size, max_page_size = ctx.cfg.max_page_size })
end

return M
