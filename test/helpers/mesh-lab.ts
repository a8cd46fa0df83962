// The mesh lab lives in src/lab (bench/mesh uses it too); tests import it from here.
export * from '../../src/lab/mesh-world.js';
