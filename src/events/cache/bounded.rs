//! A map that holds at most a budget of weight (bytes, or entries): past it, other entries go
//! one by one, whichever the map lists first. That is a hash order, unrelated to how often an
//! entry is read; starting over instead (the first version) made every cached listing of a
//! large catalogue read its views again at once.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

pub struct Bounded<K, V> {
    entries: HashMap<K, V>,
    weight: fn(&V) -> usize,
    /// The weight of `entries`.
    held: usize,
    budget: usize,
}

impl<K: Eq + Hash + Clone, V> Bounded<K, V> {
    pub fn new(budget: usize, weight: fn(&V) -> usize) -> Self {
        Self {
            entries: HashMap::new(),
            weight,
            held: 0,
            budget,
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries.get(key)
    }

    pub fn insert(&mut self, key: K, value: V) {
        self.held += (self.weight)(&value);
        if let Some(old) = self.entries.insert(key.clone(), value) {
            self.held -= (self.weight)(&old);
        }
        while self.held > self.budget {
            let Some(other) = self.entries.keys().find(|other| **other != key).cloned() else {
                break;
            };
            self.remove(&other);
        }
    }

    pub fn remove(&mut self, key: &K) {
        if let Some(gone) = self.entries.remove(key) {
            self.held -= (self.weight)(&gone);
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.held = 0;
    }

    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_budget_one_entry_goes_for_each_new_one() {
        let mut map = Bounded::new(100, |v: &String| v.len());
        for key in 0..20 {
            map.insert(key, "x".repeat(30));
        }
        let kept = (0..20).filter(|key| map.get(key).is_some()).count();
        assert_eq!(kept, 3, "the budget holds three, not fewer");
        assert!(map.get(&19).is_some(), "the newest is kept");
        assert_eq!(map.held(), 90);
        map.insert(19, "y".repeat(10));
        assert_eq!(map.held(), 70, "a replaced entry's weight is given back");
        map.remove(&19);
        map.clear();
        assert_eq!(map.held(), 0);
    }
}
