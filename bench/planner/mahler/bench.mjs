// Mahler side of tern's planner benchmark. Problems are defined in ../PROBLEMS.md.
//
//   npm ci && node bench.mjs [--expansion detect|sequential] < requests
//
// One process serves a whole interleaved run (../main.go drives it): it
// writes one JSON line saying what it is, then answers each request line
// on stdin with one result line on stdout, until stdin closes. Progress
// and diagnostics go to stderr. By hand:
//
//   echo '{"problem":"supervisor"}' | node bench.mjs
//
// A request names a problem and how to measure it (every field but
// "problem" is optional):
//
//   {"problem": "counters-10", "warm_ms": 500, "first_warm_ms": 2000,
//    "min_runs": 3, "min_ms": 500, "max_runs": 1000, "slow_ms": 10000}
//
// and is measured as main.go measures tern (see its batch): warm-up runs
// for warm_ms (first_warm_ms in the problem's first request; at least one
// run; none once a run of the problem took longer than slow_ms), then
// timed runs until there are min_runs of them and min_ms have passed
// (max_runs at most; a single one after a run slower than slow_ms). The
// answer:
//
//   {"problem": "counters-10", "ms": [<each timed run>], "warm": <warm-up runs>,
//    "actions": 20, "iterations": 20}
//
// or {"problem": ..., "error": "..."}. Only Planner.findPlan(state, target)
// is timed: the domain and its planner are built once per problem, at its
// first request, and every plan is verified outside the timing (the first
// and the last of a request).
//
// The problems run in one worker thread, kept for the whole run, so that a
// findPlan that takes longer than RUN_TIMEOUT_MS can be abandoned (the
// worker is replaced; the answer is an error) and so that its stack can be
// deep enough for plans of 2,000 steps.

import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { isDeepStrictEqual } from 'node:util';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Task, Ref, MethodExpansion, UNDEFINED } from 'mahler';
import { Planner } from 'mahler/planner';

const PROBLEMS = ['counters-10', 'counters-100', 'counters-1000', 'components-50', 'methods-20', 'supervisor', 'stuck-3', 'stuck-4'];
const MAHLER_VERSION = JSON.parse(
	readFileSync(new URL('./node_modules/mahler/package.json', import.meta.url), 'utf8'),
).version;

// Plans of 2000 actions need search depth > Mahler's default of 1000
// (findPlan recurses once per top-level instruction). Documented option:
// Planner.from({ config: { maxSearchDepth } }).
const MAX_SEARCH_DEPTH = 10000;
// A single findPlan longer than this => infeasible. counters-1000 takes
// 30-45 s on a 2-core machine with other work running.
const RUN_TIMEOUT_MS = 120_000;
const DEFAULTS = { warm_ms: 500, first_warm_ms: 2000, min_runs: 3, min_ms: 500, max_runs: 1000, slow_ms: 10_000 };

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

// The supervisor domain: balena's supervisor in small, in the manner of
// Mahler's own examples (tests/composer and tests/orchestrator in its
// repository): apps of services, each service a container on an image.
function supervisorTasks(expansion) {
	const pull = Task.from({
		op: 'create',
		lens: '/images/:imageName',
		effect: (image) => {
			image._ = {};
		},
		description: ({ imageName }) => `pull ${imageName}`,
	});

	// Pulling is only needed to create a service, so the service's create
	// operation leads to it.
	const fetch = Task.from({
		op: 'create',
		lens: '/apps/:appName/services/:serviceName',
		expansion,
		condition: (_, { system, target }) => !(target.image in system.images),
		method: (_, { target }) => [pull({ imageName: target.image, target: {} })],
		description: ({ appName, serviceName }) => `fetch ${appName}/${serviceName}`,
	});

	const createApp = Task.from({
		op: 'create',
		lens: '/apps/:appName',
		effect: (app) => {
			app._ = { services: {} };
		},
		description: ({ appName }) => `create_app ${appName}`,
	});

	const createContainer = Task.from({
		op: 'create',
		lens: '/apps/:appName/services/:serviceName',
		condition: (_, { system, target }) => target.image in system.images,
		effect: (service, { target }) => {
			service._ = { image: target.image, status: 'created' };
		},
		description: ({ appName, serviceName }) => `create_container ${appName}/${serviceName}`,
	});

	const startContainer = Task.from({
		op: 'update',
		lens: '/apps/:appName/services/:serviceName',
		condition: (service, { target }) =>
			(service.status === 'created' || service.status === 'stopped') &&
			service.image === target.image &&
			target.status === 'running',
		effect: (service) => {
			service._.status = 'running';
		},
		description: ({ appName, serviceName }) => `start_container ${appName}/${serviceName}`,
	});

	// Wildcard tasks: they serve a service's update and delete, and the
	// steps of uninstall_app, which give no target.
	const stopContainer = Task.from({
		op: '*',
		lens: '/apps/:appName/services/:serviceName',
		condition: (service, { target }) =>
			service?.status === 'running' &&
			(target == null || target.image !== service.image || target.status !== 'running'),
		effect: (service) => {
			service._.status = 'stopped';
		},
		description: ({ appName, serviceName }) => `stop_container ${appName}/${serviceName}`,
	});

	const removeContainer = Task.from({
		op: '*',
		lens: '/apps/:appName/services/:serviceName',
		condition: (service, { target }) =>
			service != null && service.status !== 'running' && (target == null || target.image !== service.image),
		effect: (service) => {
			service.delete();
		},
		description: ({ appName, serviceName }) => `remove_container ${appName}/${serviceName}`,
	});

	const removeApp = Task.from({
		op: 'delete',
		lens: '/apps/:appName',
		condition: (app) => Object.keys(app.services).length === 0,
		effect: () => void 0,
		description: ({ appName }) => `remove_app ${appName}`,
	});

	const uninstallApp = Task.from({
		op: 'delete',
		lens: '/apps/:appName',
		// Each step reads what the ones before it wrote (a container is
		// removed once stopped, the app once empty): the case the README
		// gives for sequential expansion.
		expansion: MethodExpansion.SEQUENTIAL,
		method: (app, { appName }) => {
			const names = Object.keys(app.services);
			return [
				...names
					.filter((serviceName) => app.services[serviceName].status === 'running')
					.map((serviceName) => stopContainer({ appName, serviceName })),
				...names.map((serviceName) => removeContainer({ appName, serviceName })),
				removeApp({ appName }),
			];
		},
		description: ({ appName }) => `uninstall_app ${appName}`,
	});

	return [fetch, uninstallApp, pull, createApp, createContainer, startContainer, stopContainer, removeContainer, removeApp];
}

function supervisorProblem() {
	const services = (app, version, status) => {
		const s = {};
		for (let i = 1; i <= 5; i++) s[`s${i}`] = { image: `${app}-s${i}:${version}`, status };
		return s;
	};
	const state = { images: {}, apps: {} };
	for (const app of ['old', 'move']) {
		state.apps[app] = { services: services(app, 1, 'running') };
		for (const { image } of Object.values(state.apps[app].services)) state.images[image] = {};
	}
	const move = services('move', 1, 'running');
	move.s1.image = 'move-s1:2';
	move.s2.image = 'move-s2:2';
	const target = { apps: { move: { services: move }, old: UNDEFINED } };
	for (const app of ['new1', 'new2', 'new3']) {
		target.apps[app] = { services: services(app, 1, 'running') };
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
	if (name === 'supervisor') {
		// old: 5 stops, 5 removes, remove_app; move s1 and s2: stop, remove,
		// pull, create, start; new1..3: create_app and 5 x (pull, create, start)
		return { ...supervisorProblem(), tasks: supervisorTasks(expansion), expectedActions: 69 };
	}
	if ((m = /^stuck-(\d+)$/.exec(name))) {
		// counters-N and one more counter that would have to count down: no
		// plan reaches the target (Mahler has no partial plans).
		const n = +m[1];
		const p = countersProblem(n, 2);
		p.state.counters[`c${pad(n, 4)}`] = 5;
		p.target.counters[`c${pad(n, 4)}`] = 1;
		return { ...p, tasks: [counterTasks()], expectedActions: 0, expectNoPlan: true };
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

// Expected final state: initial state with the (partial) target merged in;
// UNDEFINED deletes.
function merge(s, t) {
	if (t != null && typeof t === 'object' && !Array.isArray(t)) {
		const r = { ...s };
		for (const [k, v] of Object.entries(t)) {
			if (v === UNDEFINED) delete r[k];
			else r[k] = merge(s?.[k], v);
		}
		return r;
	}
	return t;
}

// Images are not named in the supervisor's target: the final state may
// have more of them than the merge says.
function withoutImages(s) {
	const { images, ...rest } = s;
	return rest;
}

function verify(name, res, p) {
	if (p.expectNoPlan) {
		if (res.success) throw new Error(`${name}: a plan was found where none exists`);
		return { count: 0, forks: 0 };
	}
	if (!res.success) {
		throw new Error(`${name}: no plan found: ${res.error?.message ?? res.error}`);
	}
	const { count, forks } = countActions(res.start);
	let final = replay(res.start, p.state);
	let want = merge(p.state, p.target);
	if (name === 'supervisor') {
		[final, want] = [withoutImages(final), withoutImages(want)];
	}
	if (!isDeepStrictEqual(final, want)) {
		throw new Error(`${name}: replaying the plan does not reach the target`);
	}
	if (count !== p.expectedActions) {
		throw new Error(`${name}: plan has ${count} actions, PROBLEMS.md says ${p.expectedActions}`);
	}
	return { count, forks };
}

// ---------------------------------------------------------------- worker

// built problems, by name, for the life of the worker
const built = new Map();
// problems with a run slower than slow_ms: not warmed up again
const slow = new Set();

function workerMain(expansion) {
	parentPort.on('message', (req) => {
		try {
			parentPort.postMessage({ type: 'done', result: measure(req, expansion) });
		} catch (e) {
			log(e?.stack ?? e);
			parentPort.postMessage({ type: 'done', result: { problem: req.problem, error: String(e?.message ?? e) } });
		}
	});
}

function measure(req, expansion) {
	const o = { ...DEFAULTS, ...req };
	const name = o.problem;
	let b = built.get(name);
	let warmMS = o.warm_ms;
	if (b == null) {
		warmMS = o.first_warm_ms;
		const p = buildProblem(name, expansion);
		const planner = Planner.from({ tasks: p.tasks, config: { maxSearchDepth: MAX_SEARCH_DEPTH } });
		b = { p, planner };
		built.set(name, b);
	}
	const timed = () => {
		const t0 = performance.now();
		const res = b.planner.findPlan(b.p.state, b.p.target);
		const t = performance.now() - t0;
		parentPort.postMessage({ type: 'run' }); // the next run gets a fresh timeout
		if (t > o.slow_ms) slow.add(name);
		return [t, res];
	};

	let warm = 0;
	let res;
	let t;
	if (!slow.has(name)) {
		const t1 = performance.now();
		do {
			[t, res] = timed();
			warm++;
			if (warm === 1) verify(name, res, b.p);
		} while (performance.now() - t1 < warmMS && !slow.has(name));
	}
	const ms = [];
	const t1 = performance.now();
	for (;;) {
		const enough = slow.has(name)
			? ms.length >= 1
			: ms.length >= o.max_runs || (ms.length >= o.min_runs && performance.now() - t1 >= o.min_ms);
		if (enough) break;
		[t, res] = timed();
		ms.push(t);
	}
	const { count } = verify(name, res, b.p); // the last measured plan too
	return { problem: name, ms, warm, actions: count, iterations: res.stats?.iterations };
}

// ---------------------------------------------------------------- main

function newWorker(expansion) {
	return new Worker(new URL(import.meta.url), {
		workerData: { expansion },
		// deep (2000-level) recursion in findPlan + DAG traversal
		resourceLimits: { stackSizeMb: 64 },
		stdout: false,
		stderr: false,
	});
}

// ask sends one request to the worker and resolves with its answer. A
// worker that dies or exceeds RUN_TIMEOUT_MS for one run is terminated;
// the next request gets a new one.
function asker(expansion) {
	let w = null;
	return (req) =>
		new Promise((resolve) => {
			w ??= newWorker(expansion);
			const worker = w;
			let timer;
			const onMessage = (msg) => (msg.type === 'done' ? finish(msg.result) : arm());
			const onError = (e) => fail(String(e?.stack ?? e));
			const onExit = (code) => fail(`worker exited (${code})`);
			const finish = (r) => {
				clearTimeout(timer);
				worker.off('message', onMessage).off('error', onError).off('exit', onExit);
				resolve(r);
			};
			const fail = (error) => {
				worker.terminate();
				if (w === worker) w = null;
				finish({ problem: req.problem, error });
			};
			const arm = () => {
				clearTimeout(timer);
				timer = setTimeout(() => fail(`a single findPlan run exceeded ${RUN_TIMEOUT_MS / 1000} s`), RUN_TIMEOUT_MS);
			};
			arm();
			worker.on('message', onMessage).on('error', onError).on('exit', onExit);
			worker.postMessage(req);
		});
}

async function main() {
	const args = process.argv.slice(2);
	let expansion = MethodExpansion.DETECT; // Mahler's default for methods
	for (let i = 0; i < args.length; i++) {
		if (args[i] === '--expansion') {
			expansion = args[++i];
			if (!Object.values(MethodExpansion).includes(expansion)) {
				throw new Error(`--expansion must be one of ${Object.values(MethodExpansion).join(', ')}`);
			}
		} else {
			throw new Error(`unknown argument ${args[i]}`);
		}
	}
	const out = (x) => process.stdout.write(JSON.stringify(x) + '\n');
	out({ mahler: MAHLER_VERSION, node: process.version, problems: PROBLEMS, expansion });
	const ask = asker(expansion);
	for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
		if (line.trim() === '') continue;
		let req;
		try {
			req = JSON.parse(line);
		} catch (e) {
			out({ error: `bad request: ${e.message}` });
			continue;
		}
		if (!PROBLEMS.includes(req.problem)) {
			out({ problem: req.problem, error: `unknown problem; problems: ${PROBLEMS.join(', ')}` });
			continue;
		}
		const r = await ask(req);
		if (r.error != null) log(`${req.problem}: ERROR ${r.error}`);
		out(r);
	}
	process.exit(0); // the worker would keep the process alive
}

if (isMainThread) {
	main().catch((e) => {
		log(e?.stack ?? e);
		process.exit(1);
	});
} else {
	const { workerData } = await import('node:worker_threads');
	workerMain(workerData.expansion);
}
