// A tiny event emitter shared by the library's parts. A listener that throws
// is reported and skipped: one broken subscriber must not starve the others.

export class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  /**
   * Adds a listener; returns a function that removes it.
   * @param {string} name
   * @param {Function} fn
   * @returns {() => void}
   */
  on(name, fn) {
    let list = this._listeners.get(name);
    if (!list) this._listeners.set(name, (list = []));
    list.push(fn);
    return () => this.off(name, fn);
  }

  /** Removes a listener (also one added with once, by the function given to it). */
  off(name, fn) {
    const list = this._listeners.get(name);
    if (!list) return;
    const i = list.findIndex((l) => l === fn || l.inner === fn);
    if (i >= 0) list.splice(i, 1);
    if (!list.length) this._listeners.delete(name);
  }

  /** A listener called at most once; returns its remover. */
  once(name, fn) {
    const wrap = (...args) => {
      this.off(name, wrap);
      fn.apply(this, args);
    };
    wrap.inner = fn;
    return this.on(name, wrap);
  }

  /** Calls every listener of `name` with args (a copy of the list: listeners may unsubscribe). */
  emit(name, ...args) {
    const list = this._listeners.get(name);
    if (!list) return;
    for (const fn of list.slice()) {
      try {
        fn.apply(this, args);
      } catch (e) {
        console.error(`tabsync: a '${name}' listener threw`, e);
      }
    }
  }
}
