(module (memory 1) (data (i32.const 65535) "z") (data (i32.const 65536) ""))
