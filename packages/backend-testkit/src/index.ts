export * from './trees.js';
export * from './conformance.js';
