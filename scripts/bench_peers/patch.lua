-- The peers' PATCH (scripts/bench --peers): change percent_complete and progress of a random
-- record among N and get it back. Arguments after `--`: N, the Authorization header ("" for
-- none), the method, the path (a format with the id's %d) and the body (a format with two
-- %d, both the new value), as scripts/bench_peers/__init__.py defines them for each peer.
dofile("scripts/bench_wrk.lua")

local shared_init = init
init = function(args)
  shared_init(args)
  method, path, body = args[3], args[4], args[5]
  headers = {["Content-Type"] = "application/json"}
  if auth ~= "" then headers["Authorization"] = auth end
end

request = function()
  local v = math.random(0, 100)
  return wrk.format(method, string.format(path, math.random(n)), headers, string.format(body, v, v))
end
