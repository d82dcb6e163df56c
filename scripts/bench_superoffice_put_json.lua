-- SuperOffice PUT of a random BatchTask as JSON, by its owner with HTTP Basic.
dofile("scripts/bench_wrk.lua")

request = function()
  local body = '{"State":"Started","Response":"progress ' .. math.random(0, 100) .. '"}'
  return wrk.format("PUT", "/api/v1/BatchTask/" .. math.random(n),
                    {["Authorization"] = auth, ["Content-Type"] = "application/json"}, body)
end
