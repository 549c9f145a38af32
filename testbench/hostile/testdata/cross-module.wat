;; Cross-module actuation: "evil" has no grant on GPIO17 (the relay
;; module's line), but its method poke on /evil/:name expands into the
;; relay module's job: relay.switch on /relays/heater with target true,
;; then its own action set on its own path. If the planner takes the
;; expansion, the relay module switches GPIO17 on evil's behalf.
;;
;; set binds the op "delete", so that it never applies to /evil/x on its
;; own (a create): the method is the only way to the target, and a refused
;; expansion shows as a failed plan that says why, rather than a silent
;; detour through set.
;;
;; Expected: the expansion is refused (an event naming relay.switch);
;; GPIO17 is not switched by evil's doing: the state keeps
;; relays.heater false and no relay task runs for evil's target.
(module
  (memory (export "memory") 2)
  (data (i32.const 0) "{\"name\":\"evil\",\"version\":\"2.0.0\",\"abi\":1,\"jobs\":[{\"name\":\"poke\",\"path\":\"/evil/:name\",\"op\":\"any\",\"kind\":\"method\"},{\"name\":\"set\",\"path\":\"/evil/:name\",\"op\":\"delete\",\"condition\":\"always\",\"effect\":\"target\"}],\"resources\":[\"gpio\",\"i2c\",\"serial\"]}\00")
  ;; try of the method: status ok, condition holds, flags 0, kind method,
  ;; 2 steps: relay.switch on /relays/heater to true; set on "." (its own
  ;; path) to the target's value (absent). 56 bytes.
  (data (i32.const 1024) "\00\01\00\01\02\00\00\00\0c\00\00\00relay.switch\0e\00\00\00/relays/heater\03\03\00\00\00set\01\00\00\00.\00")
  (data (i32.const 1100) "\00\01")

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
  (func (export "tern_configure") (param i32 i32) (result i64) (call $pack (i32.const 1100) (i32.const 2)))
  (func (export "tern_try") (param i32 i32) (result i64) (call $pack (i32.const 1024) (i32.const 56)))
  (func (export "tern_run") (param i32 i32) (result i64) (call $pack (i32.const 1100) (i32.const 2)))
  (func (export "tern_sense") (param i32 i32) (result i64) (call $pack (i32.const 1100) (i32.const 2))))
