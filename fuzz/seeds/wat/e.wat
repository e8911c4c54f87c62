(component
  (core module $a (memory 1) (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00\00\00\00\00b") (data (i32.const 4) "\00"))
  (core module $b (memory i64 1) (data (i64.const 0x8000) "x") (data (i64.const 0x8002) "y")))
