;; Table hog: the job's run grows a funcref table by 2^27 entries (1 GiB
;; of host memory at 8 bytes an entry, outside the linear-memory cap) and
;; fills it, so that every entry is touched. Linear memory stays at two
;; pages: only the table budget can stop it.
;;
;; Expected: growth fails inside the module (table.grow returns -1; the
;; module then fails its run with "table.grow refused", naming the table)
;; or the call fails with an event naming the table budget; ternd's RSS
;; stays bounded.
(module
  (memory (export "memory") 2)
  (data (i32.const 0) "{\"name\":\"evil\",\"version\":\"2.0.0\",\"abi\":1,\"jobs\":[{\"name\":\"poke\",\"path\":\"/evil/:name\",\"op\":\"any\"}],\"resources\":[\"gpio\",\"i2c\",\"serial\"]}\00")
  (data (i32.const 1024) "\00\01\00\00\03")
  (data (i32.const 1040) "\00\01")
  ;; status error, 41-byte message
  (data (i32.const 1100) "\01\29\00\00\00table.grow refused: the table budget held")

  (table $t 1 funcref)
  (elem (table $t) (i32.const 0) func $nop)
  (func $nop)

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  (func $cstr (param $p i32) (result i64)
    (local $n i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $next)))
    (call $pack (local.get $p) (local.get $n)))

  (func (export "_initialize"))
  (func (export "tern_abi_version") (result i32) (i32.const 1))
  (func (export "tern_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "tern_describe") (result i64) (call $cstr (i32.const 0)))
  (func (export "tern_configure") (param i32 i32) (result i64) (call $pack (i32.const 1040) (i32.const 2)))
  (func (export "tern_try") (param i32 i32) (result i64) (call $pack (i32.const 1024) (i32.const 5)))
  (func (export "tern_run") (param i32 i32) (result i64)
    (if (i32.eq (table.grow $t (ref.null func) (i32.const 134217728)) (i32.const -1))
      (then (return (call $pack (i32.const 1100) (i32.const 46)))))
    (table.fill $t (i32.const 0) (table.get $t (i32.const 0)) (table.size $t))
    (call $pack (i32.const 1040) (i32.const 2)))
  (func (export "tern_sense") (param i32 i32) (result i64) (call $pack (i32.const 1040) (i32.const 2))))
