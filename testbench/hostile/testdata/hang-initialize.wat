;; A start function that never returns: the WASI reactor's _initialize
;; loops forever. The host calls it when it instantiates the module, first
;; of all while loading the release.
;;
;; Expected: the release is refused with an event naming _initialize and
;; its deadline; the agent goes on (the relay converges meanwhile or right
;; after).
(module
  (memory (export "memory") 2)
  (data (i32.const 0) "{\"name\":\"evil\",\"version\":\"2.0.0\",\"abi\":1,\"jobs\":[{\"name\":\"poke\",\"path\":\"/evil/:name\",\"op\":\"any\"}],\"resources\":[\"gpio\",\"i2c\",\"serial\"]}\00")
  (data (i32.const 1024) "\00\01\00\00\03")
  (data (i32.const 1040) "\00\01")

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  (func $cstr (param $p i32) (result i64)
    (local $n i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $next)))
    (call $pack (local.get $p) (local.get $n)))

  (func (export "_initialize")
    (loop $forever (br $forever)))
  (func (export "tern_abi_version") (result i32) (i32.const 1))
  (func (export "tern_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "tern_describe") (result i64) (call $cstr (i32.const 0)))
  (func (export "tern_configure") (param i32 i32) (result i64) (call $pack (i32.const 1040) (i32.const 2)))
  (func (export "tern_try") (param i32 i32) (result i64) (call $pack (i32.const 1024) (i32.const 5)))
  (func (export "tern_run") (param i32 i32) (result i64) (call $pack (i32.const 1040) (i32.const 2)))
  (func (export "tern_sense") (param i32 i32) (result i64) (call $pack (i32.const 1040) (i32.const 2))))
