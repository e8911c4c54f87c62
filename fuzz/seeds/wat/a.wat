(module (memory 1)
  (data (i32.const 0) "a") (data (i32.const 2) "b") (data (i32.const 1000) "c\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00d")
  (data (i32.const 2) "\00"))
