-- SailPoint list with a filter: one page of 50 tasks in one status, sorted by created (the
-- default), starting at a random offset among the first thousand; Bearer token.
dofile("scripts/bench_wrk.lua")

local statuses = {"SUCCESS", "WARNING", "ERROR", "TERMINATED", "TEMPERROR"}

request = function()
  local filter = 'completionStatus%20eq%20%22' .. statuses[math.random(#statuses)] .. '%22'
  return wrk.format("GET", "/task-status/v1?limit=50&offset=" .. math.random(0, 1000) .. "&filters=" .. filter,
                    {["Authorization"] = auth})
end
