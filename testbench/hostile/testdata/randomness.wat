;; Randomness: each instance reads 8 bytes from WASI random_get on its
;; first sensor call and reports them, with the monotonic clock so that
;; every report differs, as the string "<16 hex digits>@<16 hex digits>"
;; at /evil_random. Its second call traps, which makes the host discard
;; the instance and make a new one: the next report comes from a new
;; instance (never 3 failures in a row, so no rollback).
;;
;; Expected: two instances read different bytes. wazero's default random
;; source is a fixed seed: every instance of every module on every device
;; would read the same "random" bytes.
(module
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "{\"name\":\"evil\",\"version\":\"2.0.0\",\"abi\":1,\"jobs\":[{\"name\":\"poke\",\"path\":\"/evil/:name\",\"op\":\"any\"}],\"sensors\":[{\"name\":\"dice\",\"path\":\"/evil_random\",\"interval_ms\":50}],\"resources\":[\"gpio\",\"i2c\",\"serial\"]}\00")
  (data (i32.const 1024) "\00\01\00\00\03")
  (data (i32.const 1040) "\00\01")
  (data (i32.const 1200) "0123456789abcdef")
  ;; the result: status ok, string (tag 5) of 33 bytes, then the text at 2106.
  (data (i32.const 2100) "\00\05\21\00\00\00")
  (global $used (mut i32) (i32.const 0))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  (func $cstr (param $p i32) (result i64)
    (local $n i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $next)))
    (call $pack (local.get $p) (local.get $n)))
  ;; hex writes the 8 bytes at src as 16 hex digits at dst.
  (func $hex (param $src i32) (param $dst i32)
    (local $i i32) (local $b i32)
    (loop $byte
      (local.set $b (i32.load8_u (i32.add (local.get $src) (local.get $i))))
      (i32.store8 (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 1)))
        (i32.load8_u (i32.add (i32.const 1200) (i32.shr_u (local.get $b) (i32.const 4)))))
      (i32.store8 (i32.add (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 1))) (i32.const 1))
        (i32.load8_u (i32.add (i32.const 1200) (i32.and (local.get $b) (i32.const 15)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $byte (i32.lt_u (local.get $i) (i32.const 8)))))

  (func (export "_initialize"))
  (func (export "tern_abi_version") (result i32) (i32.const 1))
  (func (export "tern_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "tern_describe") (result i64) (call $cstr (i32.const 0)))
  (func (export "tern_configure") (param i32 i32) (result i64) (call $pack (i32.const 1040) (i32.const 2)))
  (func (export "tern_try") (param i32 i32) (result i64) (call $pack (i32.const 1024) (i32.const 5)))
  (func (export "tern_run") (param i32 i32) (result i64) (call $pack (i32.const 1040) (i32.const 2)))
  (func (export "tern_sense") (param i32 i32) (result i64)
    (if (global.get $used) (then (unreachable)))
    (global.set $used (i32.const 1))
    (if (call $random_get (i32.const 2000) (i32.const 8)) (then (unreachable)))
    (drop (call $clock_time_get (i32.const 1) (i64.const 0) (i32.const 2016)))
    (call $hex (i32.const 2000) (i32.const 2106))
    (i32.store8 (i32.const 2122) (i32.const 64))
    (call $hex (i32.const 2016) (i32.const 2123))
    (call $pack (i32.const 2100) (i32.const 39))))
