-- SuperOffice PUT of a random BatchTask as XML, answered in XML, by its owner with HTTP Basic.
dofile("scripts/bench_wrk.lua")

request = function()
  local body = '<BatchTaskInfo><State>Started</State><Response>progress ' .. math.random(0, 100) ..
               '</Response></BatchTaskInfo>'
  return wrk.format("PUT", "/api/v1/BatchTask/" .. math.random(n),
                    {["Authorization"] = auth, ["Content-Type"] = "application/xml",
                     ["Accept"] = "application/xml"}, body)
end
