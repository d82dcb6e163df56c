-- SailPoint PATCH: replace percentComplete and progress of a random task, with a Bearer token.
dofile("scripts/bench_wrk.lua")

request = function()
  local v = math.random(0, 100)
  local body = '[{"op":"replace","path":"/percentComplete","value":' .. v ..
               '},{"op":"replace","path":"/progress","value":"step ' .. v .. '"}]'
  return wrk.format("PATCH", string.format("/task-status/v1/%032x", math.random(n)),
                    {["Authorization"] = auth, ["Content-Type"] = "application/json-patch+json"}, body)
end
