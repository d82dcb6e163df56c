-- SailPoint GET of a random task, with a Bearer token.
dofile("scripts/bench_wrk.lua")

request = function()
  return wrk.format("GET", string.format("/task-status/v1/%032x", math.random(n)), {["Authorization"] = auth})
end
