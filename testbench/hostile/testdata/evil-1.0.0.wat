;; The harmless first version of module "evil": what the device runs
;; before a hostile release arrives. A job on /evil/:name whose condition
;; always holds, whose effect is true and whose run does nothing. The
;; release generators (hostile_test.go) derive 2.0.0, 2.0.1… from this text
;; by replacing its version, the manifest bomb by replacing its version
;; with 600 KB, the compile bomb by adding one function.
;;
;; Conventions of every module in this folder:
;;   - the manifest is a NUL-terminated string at address 0 ($cstr finds
;;     its length; the test reads it from there for the tern.manifest
;;     section, so that `tern release` never has to run the module);
;;   - results are packed as ptr << 32 | len ($pack), see sdk/ABI.md.
(module
  (memory (export "memory") 2)
  (data (i32.const 0) "{\"name\":\"evil\",\"version\":\"1.0.0\",\"abi\":1,\"jobs\":[{\"name\":\"poke\",\"path\":\"/evil/:name\",\"op\":\"any\"}],\"resources\":[\"gpio\",\"i2c\",\"serial\"]}\00")
  ;; try: status ok, condition holds, flags 0, action, effect true
  (data (i32.const 1024) "\00\01\00\00\03")
  ;; status ok, null
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
  (func (export "tern_sense") (param i32 i32) (result i64) (call $pack (i32.const 1040) (i32.const 2))))
