-- webMethods PUT of a random task: TaskInfo merged and TaskData replaced, by an assignee with HTTP Basic.
dofile("scripts/bench_wrk.lua")

local priorities = {"low", "medium", "high"}

request = function()
  local v = math.random(0, 100)
  local body = '{"TaskInfo":{"priority":"' .. priorities[math.random(#priorities)] ..
               '"},"TaskData":{"Order":{"progress":' .. v .. '}}}'
  return wrk.format("PUT", "/rest/pub/opentask/" .. math.random(n),
                    {["Authorization"] = auth, ["Content-Type"] = "application/json"}, body)
end
