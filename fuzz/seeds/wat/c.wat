(module (import "env" "mem" (memory 1)) (import "env" "g" (global i32)) (memory 1)
  (data (memory 0) (i32.const 8) "imp\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00ort")
  (data (memory 1) (global.get 0) "dyn")
  (data (memory 1) (i32.const 65530) "end\00\00\00"))
