// Mahler side of tern's planner benchmark. Problems are defined in ../PROBLEMS.md.
//
//   npm ci && node bench.mjs [problem ...] [--runs N] [--expansion detect|sequential]
//
// Prints ONE JSON object to stdout; progress and diagnostics go to stderr.
//
// Each problem runs in its own worker thread so that a run that takes longer
// than RUN_TIMEOUT_MS can be abandoned and reported with "ms": null.
// Only Planner.findPlan(state, target) is timed; building tasks/planner and
// the verification of the plan are not.

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { isDeepStrictEqual } from 'node:util';
import { readFileSync } from 'node:fs';
import { Task, Ref, MethodExpansion } from 'mahler';
import { Planner } from 'mahler/planner';

const PROBLEMS = ['counters-10', 'counters-100', 'counters-1000', 'components-50', 'methods-20'];
const MAHLER_VERSION = JSON.parse(
	readFileSync(new URL('./node_modules/mahler/package.json', import.meta.url), 'utf8'),
).version;

// Plans of 2000 actions need search depth > Mahler's default of 1000
// (findPlan recurses once per top-level instruction). Documented option:
// Planner.from({ config: { maxSearchDepth } }).
const MAX_SEARCH_DEPTH = 10000;
const RUN_TIMEOUT_MS = 60_000; // a single findPlan longer than this => infeasible
const TARGET_TIME_MS = 3_000; // measure until ~3 s per problem ...
const MIN_RUNS = 5; // ... but at least 5 runs
const MAX_RUNS = 200;
const SLOW_RUN_MS = 10_000; // a run slower than this => only SLOW_RUNS runs
const SLOW_RUNS = 3;

const log = (...a) => console.error('[mahler-bench]', ...a);
const pad = (i, w) => String(i).padStart(w, '0');

// ---------------------------------------------------------------- problems

function counterTasks() {
	// action plus_one on /counters/:name, op update: cur < tgt -> cur + 1
	return Task.from({
		lens: '/counters/:name',
		op: 'update',
		condition: (cur, { target }) => cur < target,
		effect: (cur) => {
			cur._ = cur._ + 1;
		},
		description: ({ name }) => `plus_one ${name}`,
	});
}

function countersProblem(n, tgtValue) {
	const state = { counters: {} };
	const target = { counters: {} };
	for (let i = 0; i < n; i++) {
		state.counters[`c${pad(i, 4)}`] = 0;
		target.counters[`c${pad(i, 4)}`] = tgtValue;
	}
	return { state, target };
}

function buildProblem(name, expansion) {
	let m;
	if ((m = /^counters-(\d+)$/.exec(name))) {
		const n = +m[1];
		return {
			...countersProblem(n, 2),
			tasks: [counterTasks()],
			expectedActions: 2 * n,
		};
	}
	if (name === 'components-50') {
		const state = { components: {} };
		const target = { components: {} };
		const tasks = [];
		const step = (verb, k, from, to) =>
			Task.from({
				lens: `/components/c${k}/state`,
				op: 'update',
				condition: (cur) => cur === from,
				effect: (cur) => {
					cur._ = to;
				},
				description: `${verb}_c${k}`,
			});
		for (let i = 0; i < 50; i++) {
			const k = pad(i, 2);
			state.components[`c${k}`] = { state: 'absent' };
			if (i < 10) {
				target.components[`c${k}`] = { state: 'running' };
			}
			tasks.push(
				step('download', k, 'absent', 'downloaded'),
				step('install', k, 'downloaded', 'installed'),
				step('start', k, 'installed', 'running'),
				step('stop', k, 'running', 'installed'),
			);
		}
		return { state, target, tasks, expectedActions: 30 };
	}
	if (name === 'methods-20') {
		const plusOne = counterTasks();
		const plusTwo = Task.from({
			lens: '/counters/:name',
			op: 'update',
			expansion,
			condition: (cur, { target }) => target - cur >= 2,
			method: (_, { target, name }) => [plusOne({ name, target }), plusOne({ name, target })],
			description: ({ name }) => `plus_two ${name}`,
		});
		const plusFour = Task.from({
			lens: '/counters/:name',
			op: 'update',
			expansion,
			condition: (cur, { target }) => target - cur >= 4,
			method: (_, { target, name }) => [plusTwo({ name, target }), plusTwo({ name, target })],
			description: ({ name }) => `plus_four ${name}`,
		});
		// Planner.from puts methods before actions (stable sort), so the order
		// tried is plus_four, plus_two, plus_one.
		return {
			...countersProblem(20, 10),
			tasks: [plusFour, plusTwo, plusOne],
			expectedActions: 200,
		};
	}
	throw new Error(`unknown problem ${name}`);
}

// ---------------------------------------------------------------- plan checks

// Count action (value) nodes of the plan DAG. Nodes are
// { _tag: 'value', action, next } | { _tag: 'fork', next: Node[] } | { _tag: 'join', next }.
function countActions(start) {
	const seen = new Set();
	const stack = start ? [start] : [];
	let count = 0;
	let forks = 0;
	while (stack.length > 0) {
		const n = stack.pop();
		if (n == null || seen.has(n)) continue;
		seen.add(n);
		if (n._tag === 'value') count++;
		if (n._tag === 'fork') {
			forks++;
			stack.push(...n.next);
		} else {
			stack.push(n.next);
		}
	}
	return { count, forks };
}

// Replay the plan on a copy of the initial state: check every action's
// condition, apply its effect. Branches of a fork are replayed in order.
// Returns the final state.
function replay(start, initial) {
	const ref = Ref.of(structuredClone(initial));
	const run = (node) => {
		// returns the join node that ends this branch (or null at the end)
		while (node != null) {
			if (node._tag === 'value') {
				const a = node.action;
				if (!a.condition(ref._)) {
					throw new Error(`condition failed replaying ${a.description} at ${a.path}`);
				}
				a.effect(ref);
				node = node.next;
			} else if (node._tag === 'fork') {
				let join = null;
				for (const b of node.next) join = run(b);
				node = join ? join.next : null;
			} else {
				return node; // join
			}
		}
		return null;
	};
	let n = start;
	// a plan may start with a join node, which is ignored
	while (n != null && n._tag === 'join') n = n.next;
	run(n);
	return ref._;
}

// Expected final state: initial state with the (partial) target merged in.
function merge(s, t) {
	if (t != null && typeof t === 'object' && !Array.isArray(t)) {
		const r = { ...s };
		for (const [k, v] of Object.entries(t)) r[k] = merge(s?.[k], v);
		return r;
	}
	return t;
}

function verify(name, res, p) {
	if (!res.success) {
		throw new Error(`${name}: no plan found: ${res.error?.message ?? res.error}`);
	}
	const { count, forks } = countActions(res.start);
	const final = replay(res.start, p.state);
	if (!isDeepStrictEqual(final, merge(p.state, p.target))) {
		throw new Error(`${name}: replaying the plan does not reach the target`);
	}
	if (count !== p.expectedActions) {
		throw new Error(`${name}: plan has ${count} actions, PROBLEMS.md says ${p.expectedActions}`);
	}
	return { count, forks };
}

// ---------------------------------------------------------------- worker

function median(xs) {
	const s = [...xs].sort((a, b) => a - b);
	const m = s.length >> 1;
	return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function workerMain({ name, runs: fixedRuns, expansion }) {
	const p = buildProblem(name, expansion);
	const planner = Planner.from({ tasks: p.tasks, config: { maxSearchDepth: MAX_SEARCH_DEPTH } });
	const timed = () => {
		const t0 = performance.now();
		const res = planner.findPlan(p.state, p.target);
		return [performance.now() - t0, res];
	};

	// warm-up (also verified)
	let [t, res] = timed();
	const { count, forks } = verify(name, res, p);
	parentPort.postMessage({ type: 'warm', ms: t });
	log(`${name}: warm-up ${t.toFixed(2)} ms, ${count} actions, ${forks} forks, ` +
		`iterations=${res.stats.iterations} maxDepth=${res.stats.maxDepth}`);
	let note;
	// more warm-up for fast problems so V8 has optimised the hot paths
	// (~1 s or 200 runs, whichever comes first)
	if (t < 1000) {
		for (let i = 0, t1 = performance.now(); i < 200 && performance.now() - t1 < 1000; i++) timed();
	}

	const times = [];
	let wanted = fixedRuns;
	if (wanted == null && t > SLOW_RUN_MS) {
		wanted = SLOW_RUNS;
		note = `one run > ${SLOW_RUN_MS / 1000} s: only ${SLOW_RUNS} runs`;
	}
	const t1 = performance.now();
	for (;;) {
		if (wanted != null ? times.length >= wanted
			: times.length >= MIN_RUNS && (performance.now() - t1 >= TARGET_TIME_MS || times.length >= MAX_RUNS)) {
			break;
		}
		[t, res] = timed();
		times.push(t);
		parentPort.postMessage({ type: 'run', ms: t });
	}
	verify(name, res, p); // the last measured plan too
	const out = { name, ms: median(times), runs: times.length, actions: count };
	if (name === 'methods-20') out.expansion = expansion;
	if (note) out.note = note;
	parentPort.postMessage({ type: 'done', result: out });
}

// ---------------------------------------------------------------- main

function runProblem(name, runs, expansion) {
	return new Promise((resolve) => {
		const w = new Worker(new URL(import.meta.url), {
			workerData: { name, runs, expansion },
			// deep (2000-level) recursion in findPlan + DAG traversal
			resourceLimits: { stackSizeMb: 64 },
			stdout: false,
			stderr: false,
		});
		let timer;
		let settled = false;
		const finish = (r) => {
			if (settled) return;
			settled = true;
			clearTimeout(timer);
			w.terminate();
			resolve(r);
		};
		const arm = () => {
			clearTimeout(timer);
			timer = setTimeout(() => finish({ name, ms: null, runs: 0, actions: null,
				error: `a single findPlan run exceeded ${RUN_TIMEOUT_MS / 1000} s` }), RUN_TIMEOUT_MS);
		};
		arm();
		w.on('message', (msg) => {
			if (msg.type === 'done') finish(msg.result);
			else arm(); // a run finished; the next one gets a fresh timeout
		});
		w.on('error', (e) => finish({ name, ms: null, runs: 0, actions: null, error: String(e?.stack ?? e) }));
		w.on('exit', (code) => finish({ name, ms: null, runs: 0, actions: null, error: `worker exited (${code})` }));
	});
}

async function main() {
	const args = process.argv.slice(2);
	let runs = null;
	let expansion = MethodExpansion.DETECT; // Mahler's default for methods
	const names = [];
	for (let i = 0; i < args.length; i++) {
		if (args[i] === '--runs') {
			runs = parseInt(args[++i], 10);
			if (!(runs > 0)) throw new Error('--runs needs a positive integer');
		} else if (args[i] === '--expansion') {
			expansion = args[++i];
			if (!Object.values(MethodExpansion).includes(expansion)) {
				throw new Error(`--expansion must be one of ${Object.values(MethodExpansion).join(', ')}`);
			}
		} else if (PROBLEMS.includes(args[i])) {
			names.push(args[i]);
		} else {
			throw new Error(`unknown argument ${args[i]}; problems: ${PROBLEMS.join(', ')}`);
		}
	}
	const problems = [];
	for (const name of names.length ? names : PROBLEMS) {
		log(`${name}: start`);
		const r = await runProblem(name, runs, expansion);
		if (r.ms == null) log(`${name}: ERROR ${r.error}`);
		else log(`${name}: median ${r.ms.toFixed(3)} ms over ${r.runs} runs, ${r.actions} actions`);
		problems.push(r);
	}
	process.stdout.write(JSON.stringify({ mahler: MAHLER_VERSION, node: process.version, problems }) + '\n');
}

if (isMainThread) {
	main().catch((e) => {
		log(e?.stack ?? e);
		process.exit(1);
	});
} else {
	try {
		workerMain(workerData);
	} catch (e) {
		log(e?.stack ?? e);
		throw e;
	}
}
