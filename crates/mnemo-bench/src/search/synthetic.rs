//! Synthetic chunk vectors shaped like real ones, for sizes no corpus here
//! reaches. Two levels, as in a real library: each *document* centre lies
//! around a *seed* (a real all-MiniLM embedding of a SciFact abstract when
//! the model is available), and each chunk around its document's centre.
//! The noise is mostly drawn along directions real embeddings vary in
//! (differences of random seeds from their mean), with a smaller isotropic
//! part: uniform random noise alone would make every neighbour equally far,
//! which is neither realistic nor fair to a graph index. Queries are drawn
//! the same way but a little farther out, and never inserted.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How far a document centre lies from its seed, a chunk from its centre,
/// and a query from the centre it is about (norm of the added noise).
const DOCUMENT_SPREAD: f32 = 0.7;
const CHUNK_SPREAD: f32 = 0.5;
const QUERY_SPREAD: f32 = 0.8;
/// Seeds mixed into one data-shaped noise direction.
const MIX: usize = 8;

pub struct Mixture {
    dims: usize,
    seeds: Vec<Vec<f32>>,
    mean: Vec<f32>,
    rng: StdRng,
}

pub fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

fn normal(rng: &mut StdRng) -> f32 {
    // Box–Muller.
    let (u, v): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

impl Mixture {
    /// Around these (L2-normalised) seed embeddings.
    pub fn new(seeds: Vec<Vec<f32>>, seed: u64) -> Self {
        let dims = seeds.first().map_or(0, |s| s.len());
        let mut mean = vec![0f32; dims];
        for s in &seeds {
            mean.iter_mut().zip(s).for_each(|(m, x)| *m += x);
        }
        mean.iter_mut()
            .for_each(|m| *m /= seeds.len().max(1) as f32);
        Self {
            dims,
            seeds,
            mean,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Without a model: `n` random seeds on the sphere.
    pub fn random(dims: usize, n: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let seeds = (0..n)
            .map(|_| {
                let mut s: Vec<f32> = (0..dims).map(|_| normal(&mut rng)).collect();
                normalise(&mut s);
                s
            })
            .collect();
        Self::new(seeds, seed)
    }

    /// A unit-length noise direction: 0.8 data-shaped, 0.6 isotropic.
    fn noise(&mut self) -> Vec<f32> {
        let mut shaped = vec![0f32; self.dims];
        for _ in 0..MIX {
            let s = &self.seeds[self.rng.random_range(0..self.seeds.len())];
            let z = normal(&mut self.rng);
            for ((o, x), m) in shaped.iter_mut().zip(s).zip(&self.mean) {
                *o += z * (x - m);
            }
        }
        normalise(&mut shaped);
        let mut iso: Vec<f32> = (0..self.dims).map(|_| normal(&mut self.rng)).collect();
        normalise(&mut iso);
        shaped
            .iter()
            .zip(&iso)
            .map(|(a, b)| 0.8 * a + 0.6 * b)
            .collect()
    }

    fn around(&mut self, centre: &[f32], spread: f32) -> Vec<f32> {
        let noise = self.noise();
        let mut v: Vec<f32> = centre
            .iter()
            .zip(&noise)
            .map(|(c, n)| c + spread * n)
            .collect();
        normalise(&mut v);
        v
    }

    /// A new document centre around a random seed.
    pub fn document(&mut self) -> Vec<f32> {
        let s = self.seeds[self.rng.random_range(0..self.seeds.len())].clone();
        self.around(&s, DOCUMENT_SPREAD)
    }

    /// A chunk of the document centred at `centre`.
    pub fn chunk(&mut self, centre: &[f32]) -> Vec<f32> {
        self.around(centre, CHUNK_SPREAD)
    }

    /// A query about one of `centres`.
    pub fn query(&mut self, centres: &[Vec<f32>]) -> Vec<f32> {
        let c = self.rng.random_range(0..centres.len());
        self.around(&centres[c].clone(), QUERY_SPREAD)
    }
}
