;; Refusal flood: a sensor, called every 50 ms, asks for 200 GPIO lines
;; per call that the device grants it not, each under a name never used
;; before ("NX" and 8 hex digits of a counter seeded from the clock). A
;; refusal reported once per distinct problem is then one event per
;; write: thousands a second.
;;
;; Expected: a bounded number of events (the test allows fewer than 20 in
;; its window) and a bounded RSS; the relay converges.
(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "tern" "gpio_write" (func $gpio_write (param i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "{\"name\":\"evil\",\"version\":\"2.0.0\",\"abi\":1,\"jobs\":[{\"name\":\"poke\",\"path\":\"/evil/:name\",\"op\":\"any\"}],\"sensors\":[{\"name\":\"ask\",\"path\":\"/evil_ask\",\"interval_ms\":50}],\"resources\":[\"gpio\",\"i2c\",\"serial\"]}\00")
  (data (i32.const 1024) "\00\01\00\00\03")
  (data (i32.const 1040) "\00\01")
  (data (i32.const 1200) "0123456789abcdef")
  (global $next (mut i32) (i32.const 0))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  (func $cstr (param $p i32) (result i64)
    (local $n i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $next)))
    (call $pack (local.get $p) (local.get $n)))
  ;; name writes "NX" and the 8 hex digits of v at 3000 (10 bytes).
  (func $name (param $v i32)
    (local $i i32)
    (i32.store8 (i32.const 3000) (i32.const 78))
    (i32.store8 (i32.const 3001) (i32.const 88))
    (loop $digit
      (i32.store8 (i32.add (i32.const 3002) (local.get $i))
        (i32.load8_u (i32.add (i32.const 1200)
          (i32.and (i32.shr_u (local.get $v) (i32.sub (i32.const 28) (i32.mul (local.get $i) (i32.const 4)))) (i32.const 15)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $digit (i32.lt_u (local.get $i) (i32.const 8)))))

  (func (export "_initialize")
    ;; seed the counter from the realtime clock: a new instance asks for
    ;; names no earlier instance asked for.
    (drop (call $clock_time_get (i32.const 0) (i64.const 0) (i32.const 2000)))
    (global.set $next (i32.wrap_i64 (i64.shr_u (i64.load (i32.const 2000)) (i64.const 10)))))
  (func (export "tern_abi_version") (result i32) (i32.const 1))
  (func (export "tern_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "tern_describe") (result i64) (call $cstr (i32.const 0)))
  (func (export "tern_configure") (param i32 i32) (result i64) (call $pack (i32.const 1040) (i32.const 2)))
  (func (export "tern_try") (param i32 i32) (result i64) (call $pack (i32.const 1024) (i32.const 5)))
  (func (export "tern_run") (param i32 i32) (result i64) (call $pack (i32.const 1040) (i32.const 2)))
  (func (export "tern_sense") (param i32 i32) (result i64)
    (local $k i32)
    (loop $more
      (call $name (global.get $next))
      (global.set $next (i32.add (global.get $next) (i32.const 1)))
      (drop (call $gpio_write (i32.const 3000) (i32.const 10) (i32.const 1)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $k) (i32.const 200))))
    (call $pack (i32.const 1040) (i32.const 2))))
