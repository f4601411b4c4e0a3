// Types of optional-backends.js: each resolves to the package's module namespace.
export declare const loadCuda: () => Promise<Record<string, unknown>>;
export declare const loadCpu: () => Promise<Record<string, unknown>>;
export declare const loadWebgpu: () => Promise<Record<string, unknown>>;
