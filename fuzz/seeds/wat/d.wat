(module (memory 1 1 (pagesize 1)) (data (i32.const 0) "\00"))
