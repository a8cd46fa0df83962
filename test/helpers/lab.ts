// The namespace lab lives in src/lab (meshd demo uses it too); tests import it from here.
export * from '../../src/lab/netns-lab.js';
