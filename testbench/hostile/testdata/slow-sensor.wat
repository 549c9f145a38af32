;; Slow sensor: every call of its sensor sleeps for an hour (WASI
;; poll_oneoff on the monotonic clock), which the host cuts at the call's
;; deadline. It is called again right after (interval 50 ms).
;;
;; Expected: module.error events naming the deadline; the relay module
;; still converges promptly, because sensors run beside each other and
;; beside plans: a relay target must not wait for this sensor.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "{\"name\":\"evil\",\"version\":\"2.0.0\",\"abi\":1,\"jobs\":[{\"name\":\"poke\",\"path\":\"/evil/:name\",\"op\":\"any\"}],\"sensors\":[{\"name\":\"slow\",\"path\":\"/evil_slow\",\"interval_ms\":50}],\"resources\":[\"gpio\",\"i2c\",\"serial\"]}\00")
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

  (func (export "_initialize"))
  (func (export "tern_abi_version") (result i32) (i32.const 1))
  (func (export "tern_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "tern_describe") (result i64) (call $cstr (i32.const 0)))
  (func (export "tern_configure") (param i32 i32) (result i64) (call $pack (i32.const 1040) (i32.const 2)))
  (func (export "tern_try") (param i32 i32) (result i64) (call $pack (i32.const 1024) (i32.const 5)))
  (func (export "tern_run") (param i32 i32) (result i64) (call $pack (i32.const 1040) (i32.const 2)))
  (func (export "tern_sense") (param i32 i32) (result i64)
    ;; one clock subscription at 3000: userdata 0, tag 0 (clock), clock id
    ;; 1 (monotonic) at +16, relative timeout of one hour at +24.
    (i32.store (i32.const 3016) (i32.const 1))
    (i64.store (i32.const 3024) (i64.const 3600000000000))
    (drop (call $poll_oneoff (i32.const 3000) (i32.const 3100) (i32.const 1) (i32.const 3200)))
    (call $pack (i32.const 1040) (i32.const 2))))
