std = "lua54"
self = false
max_line_length = 120
files["spec/"] = { std = "+busted" }
files["bench/"] = { globals = {} }
