// Progress on stderr, and the notes of the run: things that looked wrong, reported in the JSON and
// at the end of the output.
export const T0 = Date.now();
export const log = (...a) => console.error(`[bench ${((Date.now() - T0) / 1000).toFixed(1).padStart(6)}s]`, ...a);
export const anomalies = [];
export const anomaly = (s) => { anomalies.push(s); log(`NOTE: ${s}`); };
