import { InvalidArgumentError } from 'commander';

/** Commander parser of a flag that must be a positive, finite number (every numeric flag of the CLI uses it). */
export const positiveNumber = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError('must be a positive number');
  return n;
};

/** Commander parser of a count: a whole number, 0 or more. */
export const nonNegativeInt = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError('must be a whole number, 0 or more');
  return n;
};
