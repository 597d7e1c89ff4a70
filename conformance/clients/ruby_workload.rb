# ruby-redis counter workload: prints `ok NAME` / `FAIL NAME detail`; usage: ruby ruby_workload.rb PORT
require "redis"

$failures = 0
def check(name, cond, detail = "")
  if cond
    puts "ok #{name}"
  else
    $failures += 1
    puts "FAIL #{name} #{detail}"
  end
end

begin
  r = Redis.new(host: "127.0.0.1", port: ARGV[0].to_i)
  r.del("rb:c", "rb:p", "rb:m")
  v = 0
  (1..40).each { |i| v = r.incrby("rb:c", i) }
  check("incrby", v == 820, "got #{v}")
  check("get", r.get("rb:c") == "820")
  check("del", r.del("rb:c") == 1 && r.get("rb:c").nil?)
  res = r.pipelined { |p| 100.times { p.incr("rb:p") } }
  check("pipeline", res.last == 100 && r.get("rb:p") == "100", res.last.inspect)
  res = r.multi { |m| m.incrby("rb:m", 3); m.incrbyfloat("rb:m", 0.5); m.get("rb:m") }
  check("multi-exec", res[0] == 3 && res[1] == 3.5 && res[2] == "3.5", res.inspect)
  r.hset("rb:h", "f", 1)
  check("hincrby", r.hincrby("rb:h", "f", 4) == 5 && r.hgetall("rb:h") == { "f" => "5" })
  r.close
rescue StandardError => e
  $failures += 1
  puts "FAIL exception #{e.class}: #{e}"
end
exit($failures.zero? ? 0 : 1)
